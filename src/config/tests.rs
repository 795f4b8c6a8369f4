//! Unit tests of config parsing and validation: defaults, errors that name the key and line,
//! units, the example files, tenants and the automatic worker threads.

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

#[test]
fn tenants_example_validates() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/tenants.toml");
    let c = Config::load(std::path::Path::new(example)).unwrap();
    assert_eq!(c.tenants.len(), 2);
    assert_eq!(c.tenants[0].ttl[0].max_ttl.as_deref(), Some("1h"));
    assert!(c.tenants[1].durable);
    assert_eq!(c.tenants[1].ttl[1].pattern, "*");
    assert_eq!(c.tenants[1].ttl[1].default_ttl.as_deref(), Some("24h"));
    assert_eq!(c.auth_failures_per_minute(), 10);
    assert_eq!(
        Config::parse("", "t").unwrap().auth_failures_per_minute(),
        0
    );
}

fn tenant_err(body: &str) -> String {
    Config::parse(body, "t.toml").unwrap_err().to_string()
}

const A: &str = "[[tenants]]\nname = \"a\"\nusername = \"a\"\npassword = \"pa\"\nprefix = \"a:\"\n";

#[test]
fn tenant_errors_name_the_key() {
    let two = |b: &str| format!("{A}[[tenants]]\n{b}");
    let e = tenant_err(&two("name = \"a\"\npassword = \"pb\"\nprefix = \"b:\"\n"));
    assert!(
        e.contains("tenants[1].name") && e.contains("tenants[0]"),
        "{e}"
    );
    let e = tenant_err(&two(
        "name = \"b\"\nusername = \"a\"\npassword = \"pb\"\nprefix = \"b:\"\n",
    ));
    assert!(e.contains("tenants[1].username"), "{e}");
    let e = tenant_err(&two("name = \"b\"\npassword = \"pb\"\nprefix = \"a:x\"\n"));
    assert!(
        e.contains("tenants[1].prefix") && e.contains("prefix of the other"),
        "{e}"
    );
    let e = tenant_err(&two("name = \"b\"\npassword = \"pb\"\nprefix = \"\"\n"));
    assert!(e.contains("tenants[1].prefix"), "{e}");
    let e = tenant_err(&two("name = \"b\"\npassword = \"pb\"\nprefix = \"{b}:\"\n"));
    assert!(e.contains("tenants[1].prefix") && e.contains("'{'"), "{e}");
    let e = tenant_err(&two(
        "name = \"b\"\npassword = \"pb\"\nprefix = \"__keyevent@0__:\"\n",
    ));
    assert!(
        e.contains("tenants[1].prefix") && e.contains("__keyevent@"),
        "{e}"
    );
    // Prefixes that could start a keyspace notification channel once a tenant's channel
    // name follows (found writing the `namespace` fuzz target): under prefix "_", PUBLISH
    // "_keyspace@0__:b:k" would reach tenant "b:"'s keyspace subscribers as a notification.
    for p in ["_", "__", "__key", "__keyspace@", "__keyev"] {
        let e = tenant_err(&two(&format!(
            "name = \"b\"\npassword = \"pb\"\nprefix = \"{p}\"\n"
        )));
        assert!(
            e.contains("tenants[1].prefix") && e.contains("__key"),
            "{p}: {e}"
        );
    }
    assert!(crate::config::prefix_problem("_a").is_none());
    assert!(crate::config::prefix_problem("a_").is_none());
    let e = tenant_err(&two("name = \"b\"\npassword = \"pa\"\nprefix = \"b:\"\n"));
    assert!(e.contains("tenants[1].password"), "{e}");
    let e = tenant_err(&two("name = \"b\"\nprefix = \"b:\"\n"));
    assert!(e.contains("tenants[1].password"), "{e}");
    let e = tenant_err(&two(
        "name = \"b\"\npassword_sha256 = \"xyz\"\nprefix = \"b:\"\n",
    ));
    assert!(e.contains("tenants[1].password_sha256"), "{e}");
    let e = tenant_err(&two(
        "name = \"b\"\npassword = \"pb\"\nprefix = \"b:\"\ndeny = [\"@nope\"]\n",
    ));
    assert!(e.contains("tenants[1].deny[0]"), "{e}");
    let e = tenant_err(&two(
        "name = \"b\"\npassword = \"pb\"\nprefix = \"b:\"\nallow = [\"gett\"]\n",
    ));
    assert!(e.contains("tenants[1].allow[0]"), "{e}");
    let e = tenant_err(&format!(
        "{A}[[tenants.ttl]]\npattern = \"*\"\ndefault_ttl = \"2h\"\nmax_ttl = \"1h\"\n"
    ));
    assert!(e.contains("tenants[0].ttl[0].default_ttl"), "{e}");
    let e = tenant_err(&format!(
        "{A}[[tenants.ttl]]\npattern = \"*\"\nmax_ttl = \"1y\"\n"
    ));
    assert!(e.contains("tenants[0].ttl[0].max_ttl"), "{e}");
    let e = tenant_err(&format!(
        "{A}[[tenants.ttl]]\npattern = \"*\"\nmode = \"drop\"\n"
    ));
    assert!(e.contains("drop"), "{e}");
    let e = tenant_err(&format!(
        "{A}[[tenants.ttl]]\npattern = \"*\"\nmax_tl = \"1h\"\n"
    ));
    assert!(e.contains("max_tl"), "{e}");
    let e = tenant_err(&format!("{A}colour = \"red\"\n"));
    assert!(e.contains("colour"), "{e}");
    let e = tenant_err(&format!("[server]\ndefault_tenant = \"zz\"\n{A}"));
    assert!(e.contains("server.default_tenant"), "{e}");
}

#[test]
fn default_tenant_needs_no_password() {
    let c = Config::parse(
        &format!("[server]\ndefault_tenant = \"dev\"\n{A}[[tenants]]\nname = \"dev\"\nprefix = \"dev:\"\n"),
        "t",
    )
    .unwrap();
    assert_eq!(c.server.default_tenant.as_deref(), Some("dev"));
}

#[test]
fn read_from_is_checked() {
    let base = "[backend]\nmode = \"cluster\"\nnodes = [\"h:1\"]\n";
    assert!(Config::parse(&format!("{base}read_from = \"prefer-replica\"\n"), "t").is_ok());
    let err = Config::parse(&format!("{base}read_from = \"slave\"\n"), "t")
        .unwrap_err()
        .to_string();
    assert!(err.contains("backend.read_from"), "{err}");
    let err = Config::parse(
        "[backend]\nmode = \"standalone\"\naddress = \"h:1\"\nread_from = \"replica\"\n",
        "t",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("backend.read_from"), "{err}");
}

#[test]
fn monitor_section_defaults_and_checks() {
    let c = Config::parse("", "t").unwrap();
    assert_eq!(c.monitor.interval(), std::time::Duration::from_secs(5));
    assert_eq!(c.monitor.memory_warn_ratio, 0.9);
    assert!(!c.monitor.enable_keyspace_events);
    let c = Config::parse(
        "[monitor]\ninterval = \"250ms\"\nmemory_warn_ratio = 0.5\nenable_keyspace_events = true\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.monitor.interval(), std::time::Duration::from_millis(250));
    for (bad, key) in [
        ("interval = \"0s\"", "monitor.interval"),
        ("interval = \"soon\"", "monitor.interval"),
        ("memory_warn_ratio = 0.0", "monitor.memory_warn_ratio"),
        ("memory_warn_ratio = 1.5", "monitor.memory_warn_ratio"),
        ("memroy_warn_ratio = 0.5", "memroy_warn_ratio"),
    ] {
        let err = Config::parse(&format!("[monitor]\n{bad}\n"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains(key), "{bad}: {err}");
    }
}

#[test]
fn backend_users_come_in_pairs_and_only_where_they_work() {
    let tenant = "[[tenants]]\nname = \"a\"\npassword = \"p\"\nprefix = \"a:\"\n";
    let standalone = "[backend]\nmode = \"standalone\"\naddress = \"h:1\"\n";
    let both = "backend_username = \"a-backend\"\nbackend_password = \"s\"\n";
    assert!(Config::parse(&format!("{tenant}{both}{standalone}"), "t").is_ok());
    let cluster = "[backend]\nmode = \"cluster\"\nnodes = [\"h:1\"]\n";
    assert!(Config::parse(&format!("{tenant}{both}{cluster}"), "t").is_ok());
    for (cfg, key) in [
        (
            format!("{tenant}backend_username = \"u\"\n{standalone}"),
            "tenants[0].backend_password",
        ),
        (
            format!("{tenant}backend_password = \"s\"\n{standalone}"),
            "tenants[0].backend_username",
        ),
        (format!("{tenant}{both}"), "tenants[0].backend_username"),
    ] {
        let err = Config::parse(&cfg, "t").unwrap_err().to_string();
        assert!(err.contains(key), "{cfg}: {err}");
    }
}

#[test]
fn worker_threads_default_to_one_for_the_engine_and_cores_but_one_when_forwarding() {
    let embedded = Config::parse("", "t").unwrap();
    assert_eq!(embedded.worker_threads(), 1);
    let forwarding = "[backend]\nmode = \"standalone\"\naddress = \"127.0.0.1:7000\"\n";
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(
        Config::parse(forwarding, "t").unwrap().worker_threads(),
        cores.saturating_sub(1).max(1)
    );
    assert_eq!(forwarding_threads(1), 1);
    assert_eq!(forwarding_threads(2), 1);
    assert_eq!(forwarding_threads(8), 7);
    let set = Config::parse("[server]\nworker_threads = 3\n", "t").unwrap();
    assert_eq!(set.worker_threads(), 3);
}

#[test]
fn only_forwarding_on_one_worker_runs_on_the_current_thread_runtime() {
    let one = "[server]\nworker_threads = 1\n";
    let forwarding = "[backend]\nmode = \"standalone\"\naddress = \"127.0.0.1:7000\"\n";
    let parse = |text: String| Config::parse(&text, "t").unwrap();
    assert!(parse(format!("{one}{forwarding}")).current_thread_runtime());
    assert!(!parse(one.to_string()).current_thread_runtime());
    assert!(!parse(format!("[server]\nworker_threads = 2\n{forwarding}")).current_thread_runtime());
}
