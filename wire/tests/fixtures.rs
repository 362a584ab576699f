//! The golden batches under `tests/fixtures/` read by serde (the collector's side) and written
//! back by the SDK's encoder must be the same JSON.
#![cfg(feature = "serde")]

use footfall_wire::{json, Batch, Event, EventType};

#[derive(serde::Deserialize)]
struct Envelope {
    key: String,
    sent_at: String,
    events: Vec<Event>,
}

fn fixture(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/");
    std::fs::read_to_string(format!("{path}{name}")).unwrap()
}

#[test]
fn basic_batch_round_trips_through_both_sides() {
    let text = fixture("batch-basic.json");
    let env: Envelope = serde_json::from_str(&text).unwrap();
    assert_eq!(env.events.len(), 3);
    assert_eq!(env.events[0].kind, EventType::Page);
    assert_eq!(env.events[2].user_id.as_deref(), Some("ann@example.com"));
    assert_eq!(
        env.events[2].traits.as_ref().unwrap().as_str(),
        r#"{"plan":"pro"}"#
    );

    let batch = Batch {
        key: env.key,
        sent_at: env.sent_at,
        events: env.events,
    };
    let written = json::batch_to_string(&batch);
    let a: serde_json::Value = serde_json::from_str(&written).unwrap();
    let b: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(a, b);
}
