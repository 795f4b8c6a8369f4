use super::*;

#[test]
fn empty_config_gives_defaults() {
    let c = Config::parse("", "t").unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:6379");
    assert_eq!(c.server.metrics_listen, "127.0.0.1:9379");
    assert_eq!(c.embedded.databases, 16);
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let err = Config::parse(
        "[server]\nlisten = \"127.0.0.1:1\"\nlisten_typo = 3\n",
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("listen_typo"), "{err}");
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn bad_values_are_named() {
    let err = Config::parse("[embedded]\nmaxmemory = \"12zz\"\n", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("embedded.maxmemory"), "{err}");
    let err = Config::parse("[embedded]\nmaxmemory_policy = \"lru\"\n", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("maxmemory_policy"), "{err}");
}

#[test]
fn units() {
    assert_eq!(parse_size("256mb").unwrap(), 256 << 20);
    assert_eq!(parse_size("1GB").unwrap(), 1 << 30);
    assert_eq!(parse_size("0").unwrap(), 0);
    assert!(parse_size("mb").is_err());
    assert!(parse_size("99999999999999999999gb").is_err());
    assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
    assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
    assert!(parse_duration("3y").is_err());
}

#[test]
fn standalone_needs_an_address_and_the_example_validates() {
    let err = Config::parse("[backend]\nmode = \"standalone\"\n", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("backend.address"), "{err}");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/standalone.toml");
    let c = Config::load(std::path::Path::new(example)).unwrap();
    assert_eq!(c.backend.mode, BackendMode::Standalone);
    assert_eq!(c.backend.address.as_deref(), Some("127.0.0.1:6380"));
    let err = Config::parse(
        "[backend]\nmode = \"standalone\"\naddress = \"h:1\"\ncommand_timeout = \"x\"\n",
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("backend.command_timeout"), "{err}");
}

#[test]
fn sentinel_needs_sentinels_and_a_master_name_and_the_example_validates() {
    let err = Config::parse("[backend]\nmode = \"sentinel\"\nmaster_name = \"m\"\n", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("backend.sentinels"), "{err}");
    let err = Config::parse(
        "[backend]\nmode = \"sentinel\"\nsentinels = [\"127.0.0.1:26379\"]\n",
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("backend.master_name"), "{err}");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/sentinel.toml");
    let c = Config::load(std::path::Path::new(example)).unwrap();
    assert_eq!(c.backend.mode, BackendMode::Sentinel);
    assert_eq!(c.backend.sentinels.len(), 3);
}

#[test]
fn cluster_needs_seed_nodes_and_the_example_validates() {
    let err = Config::parse("[backend]\nmode = \"cluster\"\n", "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("backend.nodes"), "{err}");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/cluster.toml");
    let c = Config::load(std::path::Path::new(example)).unwrap();
    assert_eq!(c.backend.mode, BackendMode::Cluster);
    assert_eq!(c.backend.nodes.len(), 3);
}
