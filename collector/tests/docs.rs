//! The docs cannot rot: the README shows the reverse proxy config the TLS test runs
//! (`examples/deploy/nginx.conf`), the example configuration in the release archive loads, and
//! every flag of the collector is in the README's table.

use clap::CommandFactory;
use footfall_collector::config::{Args, Config};
use std::path::Path;

fn repo(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn the_readme_shows_the_proxy_config_that_is_tested() {
    let readme = repo("README.md");
    let conf = repo("examples/deploy/nginx.conf");
    let block = format!("```nginx\n{conf}```");
    assert!(
        readme.contains(&block),
        "README.md must show examples/deploy/nginx.conf as it is, in a ```nginx block"
    );
}

#[test]
fn the_example_config_loads() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy/footfall.toml");
    let c = Config::load(Args {
        config: Some(file),
        ..Args::default()
    })
    .unwrap();
    assert_eq!(c.sites[0].key, "shop");
    assert!(c.sites[0].allows("https://shop.example.com"));
    assert!(!c.trusted_proxies.is_empty());
    let unit = repo("examples/deploy/footfall.service");
    assert!(unit.contains(
        "ExecStart=/usr/local/bin/footfall-collector --config /etc/footfall/footfall.toml"
    ));
    assert!(unit.contains("StateDirectory=footfall"));
}

#[test]
fn every_flag_is_in_the_readme() {
    let readme = repo("README.md");
    for arg in Args::command().get_arguments() {
        if let Some(long) = arg.get_long() {
            assert!(
                readme.contains(&format!("`--{long}")),
                "--{long} is missing from the README's flag table"
            );
        }
    }
    assert!(readme.contains("footfall-collector backup FILE"));
}
