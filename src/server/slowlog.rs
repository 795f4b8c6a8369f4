//! SLOWLOG: the commands that took longer than `slowlog-log-slower-than` microseconds
//! inside respgate (a forwarded command's time includes its backend round trip), kept as
//! Redis keeps them: newest first, at most `slowlog-max-len`, long argument lists and
//! strings shortened the same way.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::protocol::Reply;

/// Redis's SLOWLOG_ENTRY_MAX_ARGC and SLOWLOG_ENTRY_MAX_STRING.
const MAX_ARGC: usize = 32;
const MAX_STRING: usize = 128;

struct Entry {
    id: u64,
    unix_secs: u64,
    micros: u64,
    args: Vec<Bytes>,
    client_addr: String,
    client_name: String,
}

pub struct SlowLog {
    /// Negative: off; 0: every command.
    slower_than_us: AtomicI64,
    max_len: AtomicUsize,
    next_id: AtomicU64,
    entries: Mutex<VecDeque<Entry>>,
}

impl SlowLog {
    pub fn new(slower_than_us: i64, max_len: usize) -> SlowLog {
        SlowLog {
            slower_than_us: AtomicI64::new(slower_than_us),
            max_len: AtomicUsize::new(max_len),
            next_id: AtomicU64::new(0),
            entries: Mutex::new(VecDeque::new()),
        }
    }

    /// CONFIG SET of `slowlog-log-slower-than` / `slowlog-max-len` (values already checked).
    pub fn configure(&self, name: &str, value: &str) {
        match name {
            "slowlog-log-slower-than" => {
                if let Ok(v) = value.parse() {
                    self.slower_than_us.store(v, Ordering::Relaxed);
                }
            }
            "slowlog-max-len" => {
                if let Ok(v) = value.parse::<i64>() {
                    let len = usize::try_from(v).unwrap_or(0);
                    self.max_len.store(len, Ordering::Relaxed);
                    self.entries.lock().truncate(len);
                }
            }
            _ => {}
        }
    }

    /// Whether a command that took `took` belongs in the log (as Redis: duration >= limit).
    pub fn is_slow(&self, took: Duration) -> bool {
        let limit = self.slower_than_us.load(Ordering::Relaxed);
        limit >= 0 && took.as_micros() >= limit as u128
    }

    /// Logs a command. `args` are the command as the client sent it.
    pub fn push(&self, args: &[Bytes], took: Duration, client_addr: String, client_name: String) {
        let max_len = self.max_len.load(Ordering::Relaxed);
        if max_len == 0 {
            return;
        }
        let entry = Entry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            unix_secs: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            micros: took.as_micros() as u64,
            args: shorten(args),
            client_addr,
            client_name,
        };
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max_len);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }

    /// SLOWLOG GET's reply: the `count` newest entries (negative: all).
    pub fn get(&self, count: i64) -> Reply {
        let entries = self.entries.lock();
        let take = usize::try_from(count).unwrap_or(usize::MAX);
        Reply::Array(
            entries
                .iter()
                .take(take)
                .map(|e| {
                    Reply::Array(vec![
                        Reply::Integer(e.id as i64),
                        Reply::Integer(e.unix_secs as i64),
                        Reply::Integer(e.micros as i64),
                        Reply::Array(e.args.iter().cloned().map(Reply::Bulk).collect()),
                        Reply::Bulk(Bytes::from(e.client_addr.clone())),
                        Reply::Bulk(Bytes::from(e.client_name.clone())),
                    ])
                })
                .collect(),
        )
    }
}

/// The arguments as Redis's slowlogCreateEntry keeps them: at most 32 (the last one
/// saying how many more there were), each at most 128 bytes (plus how many more).
fn shorten(args: &[Bytes]) -> Vec<Bytes> {
    let keep = if args.len() > MAX_ARGC {
        MAX_ARGC - 1
    } else {
        args.len()
    };
    let mut out: Vec<Bytes> = args[..keep]
        .iter()
        .map(|a| {
            if a.len() > MAX_STRING {
                let mut s = a[..MAX_STRING].to_vec();
                s.extend_from_slice(
                    format!("... ({} more bytes)", a.len() - MAX_STRING).as_bytes(),
                );
                Bytes::from(s)
            } else {
                a.clone()
            }
        })
        .collect();
    if args.len() > MAX_ARGC {
        out.push(Bytes::from(format!(
            "... ({} more arguments)",
            args.len() - keep
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_commands_are_shortened_like_redis() {
        let args: Vec<Bytes> = (0..40).map(|i| Bytes::from(format!("a{i}"))).collect();
        let kept = shorten(&args);
        assert_eq!(kept.len(), 32);
        assert_eq!(kept[31], Bytes::from("... (9 more arguments)"));
        let long = vec![Bytes::from("SET"), Bytes::from(vec![b'x'; 200])];
        let kept = shorten(&long);
        assert_eq!(kept[1].len(), 128 + "... (72 more bytes)".len());
        assert!(kept[1].ends_with(b"... (72 more bytes)"));
    }

    #[test]
    fn newest_first_bounded_and_resettable() {
        let log = SlowLog::new(0, 2);
        assert!(log.is_slow(Duration::ZERO));
        for i in 0..3 {
            log.push(
                &[Bytes::from(format!("c{i}"))],
                Duration::from_micros(5),
                "127.0.0.1:1".into(),
                String::new(),
            );
        }
        assert_eq!(log.len(), 2);
        let Reply::Array(entries) = log.get(-1) else {
            panic!("array");
        };
        let Reply::Array(first) = &entries[0] else {
            panic!("entry");
        };
        assert_eq!(first[0], Reply::Integer(2));
        log.configure("slowlog-log-slower-than", "-1");
        assert!(!log.is_slow(Duration::from_secs(1)));
        log.reset();
        assert!(log.is_empty());
    }
}
