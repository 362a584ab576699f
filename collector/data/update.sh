#!/bin/sh
# Refreshes the user agent data of collector/src/enrich.rs from the registries that ship it:
# uap-core's regexes and test cases as the `ua-parser` crate (crates.io) bundles them, and
# crawler-user-agents from PyPI. Usage: collector/data/update.sh [UA_PARSER_VERSION]
# [CRAWLER_USER_AGENTS_VERSION]; then write the versions in collector/data/README.md and run
# `cargo test -p footfall-collector --test user_agents`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
uap=${1:-0.2.2}
cua=${2:-1.67.0}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/fetch/src"
cat > "$tmp/fetch/Cargo.toml" <<EOF
[package]
name = "fetch-ua-data"
version = "0.0.0"
edition = "2021"
[dependencies]
ua-parser = "=$uap"
EOF
touch "$tmp/fetch/src/lib.rs"
(cd "$tmp/fetch" && cargo fetch --quiet)
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"ua-parser-$uap" | head -n 1)
cp "$src/uap-core/regexes.yaml" "$src/uap-core/LICENSE" "$here/uap-core/"
for t in test_ua.yaml test_os.yaml test_device.yaml; do
  cp "$src/uap-core/tests/$t" "$here/../tests/data/ua/"
done

pip download --quiet --no-deps -d "$tmp" "crawler-user-agents==$cua"
python3 -m zipfile -e "$tmp"/crawler_user_agents-*.whl "$tmp/cua"
cp "$tmp/cua/crawleruseragents/crawler-user-agents.json" "$here/crawler-user-agents/"
cp "$tmp"/cua/crawler_user_agents-*.dist-info/licenses/LICENSE "$here/crawler-user-agents/"
echo "updated: uap-core from ua-parser $uap, crawler-user-agents $cua"
