use super::*;

fn engine() -> Engine {
    Engine::new(&EmbeddedConfig::default())
}

#[test]
fn keys_expire_lazily_and_actively() {
    let e = engine();
    let now = unix_ms();
    {
        let mut st = e.state.lock();
        st.dbs[0].set(b"gone", Value::string(Bytes::from_static(b"v")), Some(now - 1), now);
        st.dbs[0].set(b"kept", Value::string(Bytes::from_static(b"v")), Some(now + 60_000), now);
    }
    e.active_expire_cycle();
    e.with_state(|st| {
        assert_eq!(st.dbs[0].len(), 1);
        assert_eq!(st.dbs[0].expires_count(), 1);
    });
    assert_eq!(e.stats.expired_keys.load(Ordering::Relaxed), 1);
}

use value::Value;
