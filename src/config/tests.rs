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
