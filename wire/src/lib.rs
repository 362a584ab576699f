//! The wire format of product.md §Delivery: one [`Batch`] of [`Event`]s sent by the SDK to
//! `POST /v1/batch`. Both sides use these types, so the SDK and the collector cannot disagree.
//!
//! The SDK writes JSON with the dependency-free encoder in [`json`] (serde's serializer would
//! cost kilobytes of wasm); the collector reads it with serde (feature `serde`). Golden fixtures
//! under `tests/fixtures/` hold both sides to the same bytes.
#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]
// One-character texts are pushed and matched as `&str`, not `char`: a `char` brings its UTF-8
// encoder into the SDK's wasm.
#![allow(clippy::single_char_add_str, clippy::single_char_pattern)]

extern crate alloc;

/// What `std`'s prelude gives, from `alloc`: the SDK builds the wasm without `std` (see
/// sdk-wasm/src/lib.rs), so the modules name these here.
pub(crate) mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::string::String;
    pub use alloc::vec::Vec;
}

use prelude::*;

pub mod json;
pub mod time;

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// The SDK's name and version, sent in every event's context.
pub const SDK_NAME: &str = "footfall-web";

/// Largest batch body the collector accepts by default, in bytes (decompressed).
pub const DEFAULT_MAX_BATCH_BYTES: usize = 1024 * 1024;
/// Largest single event the collector accepts by default, in bytes of JSON.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 32 * 1024;

/// A JSON value kept as its text: `props` and `traits` travel and are stored as written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawJson(pub String);

impl RawJson {
    pub fn empty_object() -> Self {
        RawJson("{}".to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// True when the text starts like a JSON object (the only shape `props`/`traits` may have).
    pub fn is_object(&self) -> bool {
        self.0.trim_start().starts_with("{")
    }
}

#[cfg(feature = "serde")]
impl Serialize for RawJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw: &serde_json::value::RawValue =
            serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

#[cfg(feature = "serde")]
impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = alloc::boxed::Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(RawJson(raw.get().to_owned()))
    }
}

/// What kind of event this is (`type` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum EventType {
    /// A page view, named `$pageview`.
    Page,
    /// A custom event; `$pageleave` is one too.
    Track,
    /// `identify(userId, traits)`, named `$identify`.
    Identify,
    /// `setUserProperties(traits)`, named `$set`.
    Set,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Page => "page",
            EventType::Track => "track",
            EventType::Identify => "identify",
            EventType::Set => "set",
        }
    }
}

/// The page an event happened on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Page {
    pub url: String,
    pub path: String,
    #[cfg_attr(feature = "serde", serde(default))]
    pub title: String,
    #[cfg_attr(feature = "serde", serde(default))]
    pub referrer: String,
}

/// The device and SDK an event came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
#[cfg_attr(feature = "serde", serde(default))]
pub struct Context {
    pub screen: String,
    pub viewport: String,
    pub language: String,
    pub timezone: String,
    pub sdk: String,
}

/// One event, as product.md §Delivery fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Event {
    pub event_id: String,
    #[cfg_attr(feature = "serde", serde(rename = "type"))]
    pub kind: EventType,
    pub name: String,
    /// The client's clock, RFC 3339 with milliseconds.
    pub timestamp: String,
    pub anonymous_id: String,
    #[cfg_attr(feature = "serde", serde(default))]
    pub user_id: Option<String>,
    pub session_id: String,
    /// Position of the event in its session, from 1.
    pub seq: u64,
    #[cfg_attr(feature = "serde", serde(default))]
    pub page: Page,
    #[cfg_attr(feature = "serde", serde(default))]
    pub context: Context,
    #[cfg_attr(feature = "serde", serde(default = "RawJson::empty_object"))]
    pub props: RawJson,
    /// User properties, on `identify` and `set` events only.
    #[cfg_attr(
        feature = "serde",
        serde(default, skip_serializing_if = "Option::is_none")
    )]
    pub traits: Option<RawJson>,
}

/// The envelope around events. The collector reads events one by one (see its ingest), so
/// that one bad event never sinks its neighbours; this type is what the SDK writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub key: String,
    pub sent_at: String,
    pub events: Vec<Event>,
}

/// One event the collector refused, by its index in the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Rejected {
    pub index: usize,
    pub error: String,
}

/// The collector's answer to `POST /v1/batch`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct BatchResponse {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: Vec<Rejected>,
}
