//! Randomised differential test: seeded random command streams (strings, counters, lists,
//! hashes, sets, sorted sets, bitmaps, HyperLogLog, geo, streams, key commands) run against
//! a real redis-server and against respgate, and every reply must match; the hand-written
//! scripts in tests/diff check what their authors thought of, this finds what they did not.
//!
//! A small key space (8 keys shared by every type) makes WRONGTYPE, missing keys, empty
//! containers and type changes frequent; the values include Redis's parsing edge cases
//! (overflow, `inf`, `nan`, spaces, leading zeros). Every few hundred steps the whole data
//! set is read back from both servers and compared too.
//!
//! Reproduce or extend a run: `RANDOM_DIFF_SEED=7 RANDOM_DIFF_STEPS=50000 cargo test --test
//! random_differential` runs that one seed (each test's own mode) for that many steps;
//! `RANDOM_DIFF_LOG=1` also prints every command with Redis's reply.

mod common;

use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use common::respgate::Respgate;
use common::rng::Rng;

const KEYS: &[&str] = &["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
const MEMBERS: &[&str] = &[
    "a", "b", "c", "d", "e", "aa", "ab", "1", "2", "10", "-3", "",
];
const VALUES: &[&str] = &[
    "v",
    "hello",
    "",
    "0",
    "1",
    "-1",
    "7",
    "100",
    "-100",
    "3.5",
    "abc",
    "007",
    " 5",
    "+5",
    "1e2",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "18446744073709551615",
    "0x10",
];
const INCREMENTS: &[&str] = &[
    "1",
    "-1",
    "5",
    "0",
    "100",
    "-250",
    "9223372036854775807",
    "-9223372036854775808",
    "1.5",
    "x",
    "",
];
const FLOATS: &[&str] = &[
    "0.1",
    "-1.5",
    "1e3",
    "3",
    "5.0e-2",
    "10.5",
    "-0.0",
    "inf",
    "-inf",
    "nan",
    "abc",
    "1.7976931348623157e308",
    "0.3333333333333333",
    "",
];
const SCORES: &[&str] = &[
    "1", "2", "-1", "0", "1.5", "2.25", "-3.75", "100", "1e-5", "inf", "-inf", "+inf", "nan", "x",
];
const SCORE_BOUNDS: &[&str] = &[
    "-inf", "+inf", "inf", "0", "1", "(1", "2", "(2", "1.5", "-1", "(-1", "100", "x", "(",
];
const LEX_BOUNDS: &[&str] = &[
    "-", "+", "[a", "(a", "[b", "(c", "[e", "(aa", "[", "a", "[1",
];

fn key(r: &mut Rng) -> String {
    r.pick(KEYS).to_string()
}
fn member(r: &mut Rng) -> String {
    r.pick(MEMBERS).to_string()
}
fn index(r: &mut Rng) -> String {
    if r.chance(10) {
        r.pick(&[
            "100",
            "-100",
            "abc",
            "9223372036854775807",
            "-9223372036854775808",
        ])
        .to_string()
    } else {
        r.int(-6, 6).to_string()
    }
}
fn count(r: &mut Rng) -> String {
    if r.chance(10) {
        r.pick(&["-1", "abc", "1000", "0"]).to_string()
    } else {
        r.int(1, 5).to_string()
    }
}

/// How two replies are compared.
#[derive(Clone, Copy, PartialEq)]
enum Compare {
    Exact,
    /// Order is unspecified by Redis (SMEMBERS, HGETALL, KEYS ...).
    Unordered,
    /// TTL/PTTL: -2, -1, or some remaining time (exact values race the clock).
    Ttl,
    /// A lex range: exact, but not run on a skiplist-encoded set, where Redis's answer for
    /// unequal scores depends on its skiplist's random levels (a listpack's does not).
    Lex,
}

fn s(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

/// One random command and how to compare its replies.
fn command(r: &mut Rng) -> (Vec<String>, Compare) {
    use Compare::*;
    let k = key(r);
    let k2 = key(r);
    let v = r.pick(VALUES).to_string();
    let m = member(r);
    let cmd: Vec<String> = match r.below(146) {
        // Strings and counters.
        0..=2 => {
            let mut c = s(&["SET", &k, &v]);
            match r.below(8) {
                0 => c.extend(s(&["EX", "2000"])),
                1 => c.extend(s(&["PX", r.pick(&["100000", "0", "-5", "x"])])),
                2 => c.push("NX".into()),
                3 => c.push("XX".into()),
                4 => c.push("GET".into()),
                5 => c.extend(s(&["KEEPTTL"])),
                6 => c.extend(s(&["NX", "GET"])),
                _ => {}
            }
            c
        }
        3 => s(&["GET", &k]),
        4 => s(&[r.pick(&["INCR", "DECR", "GETDEL", "STRLEN"]), &k]),
        5 => s(&[r.pick(&["INCRBY", "DECRBY"]), &k, r.pick(INCREMENTS)]),
        6 => s(&["INCRBYFLOAT", &k, r.pick(FLOATS)]),
        7 => s(&["APPEND", &k, &v]),
        8 => s(&["SETRANGE", &k, &r.int(-1, 20).to_string(), &v]),
        9 => s(&["GETRANGE", &k, &index(r), &index(r)]),
        10 => s(&["MSET", &k, &v, &k2, r.pick(VALUES)]),
        11 => s(&["MGET", &k, &k2, &key(r)]),
        12 => s(&["MSETNX", &k, &v, &k2, r.pick(VALUES)]),
        13 => s(&["SETNX", &k, &v]),
        14 => s(&["GETSET", &k, &v]),
        15 => s(&["LCS", &k, &k2, r.pick(&["LEN", "IDX", "IDX", ""])])
            .into_iter()
            .filter(|a| !a.is_empty())
            .collect(),
        // Lists.
        16..=18 => {
            let mut c = s(&[r.pick(&["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), &k, &m]);
            for _ in 0..r.below(3) {
                c.push(member(r));
            }
            c
        }
        19 => {
            let mut c = s(&[r.pick(&["LPOP", "RPOP"]), &k]);
            if r.chance(40) {
                c.push(count(r));
            }
            c
        }
        20 => s(&["LRANGE", &k, &index(r), &index(r)]),
        21 => s(&["LINDEX", &k, &index(r)]),
        22 => s(&["LSET", &k, &index(r), &m]),
        23 => s(&[
            "LINSERT",
            &k,
            r.pick(&["BEFORE", "AFTER", "MIDDLE"]),
            &member(r),
            &m,
        ]),
        24 => s(&["LREM", &k, &r.int(-2, 2).to_string(), &m]),
        25 => s(&["LTRIM", &k, &index(r), &index(r)]),
        26 => s(&["LLEN", &k]),
        27 => {
            let mut c = s(&["LPOS", &k, &m]);
            if r.chance(50) {
                c.extend(s(&["RANK", r.pick(&["1", "-1", "2", "-2", "0"])]));
            }
            if r.chance(50) {
                c.extend(s(&["COUNT", r.pick(&["0", "1", "2", "-1"])]));
            }
            if r.chance(30) {
                c.extend(s(&["MAXLEN", r.pick(&["0", "2", "-1"])]));
            }
            c
        }
        28 => s(&[
            "LMOVE",
            &k,
            &k2,
            r.pick(&["LEFT", "RIGHT"]),
            r.pick(&["LEFT", "RIGHT", "UP"]),
        ]),
        29 => s(&["RPOPLPUSH", &k, &k2]),
        30 => {
            let mut c = s(&["LMPOP", "2", &k, &k2, r.pick(&["LEFT", "RIGHT"])]);
            if r.chance(50) {
                c.extend(s(&["COUNT", &count(r)]));
            }
            c
        }
        // Hashes.
        31..=33 => {
            let mut c = s(&["HSET", &k, &m, &v]);
            if r.chance(40) {
                c.extend([member(r), r.pick(VALUES).to_string()]);
            }
            c
        }
        34 => s(&[r.pick(&["HGET", "HEXISTS", "HSTRLEN"]), &k, &m]),
        35 => s(&["HDEL", &k, &m, &member(r)]),
        36 => s(&["HLEN", &k]),
        37 => s(&["HINCRBY", &k, &m, r.pick(INCREMENTS)]),
        38 => s(&["HINCRBYFLOAT", &k, &m, r.pick(FLOATS)]),
        39 => s(&["HMGET", &k, &m, &member(r)]),
        40 => s(&["HSETNX", &k, &m, &v]),
        41 => s(&[r.pick(&["HKEYS", "HVALS", "HGETALL"]), &k]),
        // Sets.
        42..=44 => {
            let mut c = s(&["SADD", &k, &m]);
            for _ in 0..r.below(3) {
                c.push(member(r));
            }
            c
        }
        45 => s(&["SREM", &k, &m, &member(r)]),
        46 => s(&[r.pick(&["SISMEMBER", "SMISMEMBER"]), &k, &m]),
        47 => s(&[r.pick(&["SCARD", "SMEMBERS"]), &k]),
        48 => s(&[r.pick(&["SINTER", "SUNION", "SDIFF"]), &k, &k2]),
        49 => s(&[
            r.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]),
            &k,
            &k2,
            &key(r),
        ]),
        50 => s(&["SMOVE", &k, &k2, &m]),
        51 => {
            let mut c = s(&["SINTERCARD", "2", &k, &k2]);
            if r.chance(50) {
                c.extend(s(&["LIMIT", r.pick(&["0", "1", "2", "-1"])]));
            }
            c
        }
        // Sorted sets.
        52..=55 => {
            let mut c = s(&["ZADD", &k]);
            for _ in 0..r.below(2) {
                c.push(r.pick(&["NX", "XX", "GT", "LT", "CH", "INCR"]).into());
            }
            c.extend([r.pick(SCORES).to_string(), m.clone()]);
            if r.chance(40) {
                c.extend([r.pick(SCORES).to_string(), member(r)]);
            }
            c
        }
        56 => s(&["ZINCRBY", &k, r.pick(SCORES), &m]),
        57 => s(&[r.pick(&["ZSCORE", "ZRANK", "ZREVRANK"]), &k, &m]),
        58 => s(&["ZMSCORE", &k, &m, &member(r)]),
        59 => {
            let mut c = s(&["ZRANGE", &k]);
            match r.below(3) {
                0 => c.extend([index(r), index(r)]),
                1 => {
                    c.extend([
                        r.pick(SCORE_BOUNDS).to_string(),
                        r.pick(SCORE_BOUNDS).to_string(),
                    ]);
                    c.push("BYSCORE".into());
                }
                _ => {
                    c.extend([
                        r.pick(LEX_BOUNDS).to_string(),
                        r.pick(LEX_BOUNDS).to_string(),
                    ]);
                    c.push("BYLEX".into());
                }
            }
            if r.chance(30) {
                c.push("REV".into());
            }
            if r.chance(30) {
                c.extend(s(&[
                    "LIMIT",
                    r.pick(&["0", "1", "-1"]),
                    r.pick(&["1", "2", "-1"]),
                ]));
            }
            if r.chance(40) {
                c.push("WITHSCORES".into());
            }
            c
        }
        60 => {
            let mut c = s(&[
                r.pick(&["ZRANGEBYSCORE", "ZREVRANGEBYSCORE", "ZCOUNT"]),
                &k,
                r.pick(SCORE_BOUNDS),
                r.pick(SCORE_BOUNDS),
            ]);
            if c[0] != "ZCOUNT" && r.chance(40) {
                c.push("WITHSCORES".into());
            }
            c
        }
        61 => s(&[
            r.pick(&[
                "ZRANGEBYLEX",
                "ZREVRANGEBYLEX",
                "ZLEXCOUNT",
                "ZREMRANGEBYLEX",
            ]),
            &k,
            r.pick(LEX_BOUNDS),
            r.pick(LEX_BOUNDS),
        ]),
        62 => s(&["ZREM", &k, &m, &member(r)]),
        63 => s(&["ZREMRANGEBYRANK", &k, &index(r), &index(r)]),
        64 => s(&[
            "ZREMRANGEBYSCORE",
            &k,
            r.pick(SCORE_BOUNDS),
            r.pick(SCORE_BOUNDS),
        ]),
        65 => s(&["ZCARD", &k]),
        66 => {
            let mut c = s(&[r.pick(&["ZPOPMIN", "ZPOPMAX"]), &k]);
            if r.chance(50) {
                c.push(count(r));
            }
            c
        }
        67 => {
            let mut c = s(&[
                r.pick(&["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"]),
                &k,
                "2",
                &k2,
                &key(r),
            ]);
            if c[0] != "ZDIFFSTORE" {
                if r.chance(40) {
                    c.extend(s(&["WEIGHTS", r.pick(SCORES), r.pick(&["1", "2", "-1"])]));
                }
                if r.chance(40) {
                    c.extend(s(&["AGGREGATE", r.pick(&["SUM", "MIN", "MAX", "AVG"])]));
                }
            }
            c
        }
        68 => {
            let mut c = s(&[r.pick(&["ZUNION", "ZINTER", "ZDIFF"]), "2", &k, &k2]);
            if r.chance(50) {
                c.push("WITHSCORES".into());
            }
            c
        }
        69 => s(&["ZRANGESTORE", &k, &k2, &index(r), &index(r)]),
        // Keys.
        70..=71 => s(&["DEL", &k, &k2]),
        72 => s(&[r.pick(&["EXISTS", "TYPE", "UNLINK", "PERSIST"]), &k]),
        73 => s(&[r.pick(&["RENAME", "RENAMENX"]), &k, &k2]),
        74 => {
            let mut c = s(&["COPY", &k, &k2]);
            if r.chance(50) {
                c.push("REPLACE".into());
            }
            c
        }
        75 => {
            // Every TTL the generator sets differs from every other by far more than a
            // command takes, so GT/LT never compare two expiry times the clock decides.
            let mut c = if r.chance(50) {
                s(&["EXPIRE", &k, r.pick(&["1000", "5000", "1000000", "abc"])])
            } else {
                s(&[
                    "PEXPIRE",
                    &k,
                    r.pick(&["1500", "7000000", "2500000000", "1.5"]),
                ])
            };
            if r.chance(40) {
                c.push(r.pick(&["NX", "XX", "GT", "LT"]).into());
            }
            c
        }
        76 => return (s(&[r.pick(&["TTL", "PTTL"]), &k]), Ttl),
        77 => s(&["DBSIZE"]),
        78 => s(&["KEYS", r.pick(&["*", "k[0-3]", "k?", "*1", "x*"])]),
        79 => {
            let mut c = s(&["SORT", &k]);
            if r.chance(50) {
                c.push("ALPHA".into());
            }
            if r.chance(30) {
                c.push("DESC".into());
            }
            if r.chance(30) {
                c.extend(s(&["LIMIT", r.pick(&["0", "1"]), r.pick(&["2", "-1"])]));
            }
            c
        }
        // Bitmaps.
        80 => s(&[
            "SETBIT",
            &k,
            &r.int(0, 40).to_string(),
            r.pick(&["0", "1", "2"]),
        ]),
        81 => s(&["GETBIT", &k, &r.int(0, 48).to_string()]),
        82 => {
            let mut c = s(&["BITCOUNT", &k]);
            if r.chance(60) {
                c.extend([index(r), index(r)]);
                if r.chance(40) {
                    c.push(r.pick(&["BYTE", "BIT"]).into());
                }
            }
            c
        }
        83 => {
            let mut c = s(&["BITPOS", &k, r.pick(&["0", "1"])]);
            if r.chance(60) {
                c.push(index(r));
                if r.chance(50) {
                    c.push(index(r));
                }
            }
            c
        }
        84 => s(&[
            "BITOP",
            r.pick(&["AND", "OR", "XOR", "NOT"]),
            &k,
            &k2,
            &key(r),
        ]),
        85 => {
            let mut c = s(&["BITFIELD", &k]);
            if r.chance(30) {
                c.extend(s(&["OVERFLOW", r.pick(&["WRAP", "SAT", "FAIL"])]));
            }
            let t = r
                .pick(&["i8", "u4", "i16", "u1", "i64", "u63", "u64"])
                .to_string();
            let off = r.pick(&["0", "3", "#1", "8"]).to_string();
            match r.below(3) {
                0 => c.extend(s(&["GET", &t, &off])),
                1 => c.extend(s(&["SET", &t, &off, r.pick(INCREMENTS)])),
                _ => c.extend(s(&["INCRBY", &t, &off, r.pick(INCREMENTS)])),
            }
            c
        }
        // HyperLogLog.
        86 => s(&["PFADD", &k, &m, &member(r)]),
        87 => s(&["PFCOUNT", &k]),
        88 => s(&["PFMERGE", &k, &k2]),
        // Geo (the first users' own data).
        89 => {
            let lon = r.pick(&[
                "13.361389",
                "15.087269",
                "-122.4194",
                "0",
                "180",
                "181",
                "x",
            ]);
            let lat = r.pick(&["38.115556", "37.502669", "37.7749", "0", "85.05", "86", "y"]);
            s(&["GEOADD", &k, lon, lat, &m])
        }
        90 => s(&[
            "GEODIST",
            &k,
            &m,
            &member(r),
            r.pick(&["m", "km", "mi", "ft", "parsecs"]),
        ]),
        91 => s(&[r.pick(&["GEOPOS", "GEOHASH"]), &k, &m, &member(r)]),
        92 => {
            let mut c = s(&["GEOSEARCH", &k]);
            if r.chance(50) {
                c.extend(s(&["FROMLONLAT", "15", "37"]));
            } else {
                c.extend(s(&["FROMMEMBER", &m]));
            }
            if r.chance(50) {
                c.extend(s(&["BYRADIUS", r.pick(&["200", "5000", "0"]), "km"]));
            } else {
                c.extend(s(&["BYBOX", "400", "400", "km"]));
            }
            c.push(r.pick(&["ASC", "DESC"]).into());
            if r.chance(50) {
                c.push("WITHDIST".into());
            }
            if r.chance(50) {
                c.push("WITHCOORD".into());
            }
            if r.chance(30) {
                c.extend(s(&["COUNT", r.pick(&["1", "2", "0"])]));
            }
            c
        }
        // Streams (explicit IDs: "*" would differ between the servers).
        93..=94 => {
            let id = format!("{}-{}", r.int(0, 6), r.int(0, 2));
            let mut c = s(&["XADD", &k]);
            if r.chance(20) {
                c.extend(s(&["MAXLEN", r.pick(&["2", "5"])]));
            }
            c.extend([id, m.clone(), v.clone()]);
            c
        }
        95 => s(&["XLEN", &k]),
        96 => {
            let mut c = s(&[
                r.pick(&["XRANGE", "XREVRANGE"]),
                &k,
                r.pick(&["-", "+", "2", "(2-0", "3-1"]),
                r.pick(&["+", "-", "5", "(4-1"]),
            ]);
            if r.chance(30) {
                c.extend(s(&["COUNT", r.pick(&["1", "2"])]));
            }
            c
        }
        97 => s(&["XDEL", &k, &format!("{}-{}", r.int(0, 6), r.int(0, 2))]),
        98 => s(&["XTRIM", &k, "MAXLEN", r.pick(&["0", "2", "5", "x"])]),
        99 => s(&["EXISTS", &k, &k2, &k]),
        // Many members at once, so encodings convert (listpack/intset to hashtable/skiplist
        // past 128 entries) and big ones (past 64 bytes) do too.
        100..=101 => {
            let base = r.int(0, 150);
            let wide = r.chance(30);
            let name = |i: i64| {
                if wide {
                    format!("{i}-{}", "x".repeat(70))
                } else {
                    i.to_string()
                }
            };
            match r.below(5) {
                0 => {
                    let mut c = s(&["SADD", &k]);
                    c.extend((base..base + 70).map(name));
                    c
                }
                1 => {
                    let mut c = s(&["RPUSH", &k]);
                    c.extend((base..base + 70).map(name));
                    c
                }
                2 => {
                    let mut c = s(&["HSET", &k]);
                    for i in base..base + 70 {
                        c.extend([name(i), (i * 3).to_string()]);
                    }
                    c
                }
                3 => {
                    let mut c = s(&["ZADD", &k]);
                    for i in base..base + 70 {
                        c.extend([((i * 7) % 23).to_string(), name(i)]);
                    }
                    c
                }
                _ => s(&["SET", &k, &name(base).repeat(1 + r.below(3))]),
            }
        }
        102 => s(&["OBJECT", "ENCODING", &k]),
        103 => s(&["SETEX", &k, r.pick(&["3000", "0", "-1", "x"]), &v]),
        104 => s(&["PSETEX", &k, r.pick(&["3500000", "0", "x"]), &v]),
        105 => {
            let mut c = s(&["GETEX", &k]);
            match r.below(4) {
                0 => c.extend(s(&["EX", "4000"])),
                1 => c.push("PERSIST".into()),
                2 => c.extend(s(&["PX", r.pick(&["0", "4500000"])])),
                _ => {}
            }
            c
        }
        106 => return (s(&[r.pick(&["EXPIRETIME", "PEXPIRETIME"]), &k]), Ttl),
        // Transactions: queued commands, EXECABORT after a queueing error, nested MULTI.
        107 => s(&["MULTI"]),
        108 => s(&[r.pick(&["EXEC", "EXEC", "DISCARD"])]),
        109 => s(&[r.pick(&["WATCH", "UNWATCH"]), &k]),
        // Scripts, among them the users' lock release and rate limiter.
        110..=113 => {
            let script = r.pick(&[
                "return redis.call('GET', KEYS[1])",
                "return redis.call('SET', KEYS[1], ARGV[1])",
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
                "local n = redis.call('INCR', KEYS[1]) if n == 1 then redis.call('EXPIRE', KEYS[1], 6000) end return n",
                "return {1, 2, {3, 'x'}, false, true, 3.99, 'end'}",
                "return redis.pcall('LPUSH', KEYS[1], ARGV[1])",
                "return redis.call('HGETALL', KEYS[1])",
                "return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')",
                "return redis.call('NOSUCHCOMMAND')",
                "return redis.call('TYPE', KEYS[1])",
                "return redis.error_reply('custom failure')",
                "return redis.status_reply('FINE')",
                "return tonumber(ARGV[1])",
                "return cjson.encode({a = 1})",
                "error('raised')",
            ]);
            s(&["EVAL", script, "1", &k, &v])
        }
        // Blocking commands with a 10 ms timeout: served at once or nil after the wait.
        114..=115 => match r.below(5) {
            0 => s(&[r.pick(&["BLPOP", "BRPOP"]), &k, &k2, "0.01"]),
            1 => s(&[r.pick(&["BZPOPMIN", "BZPOPMAX"]), &k, &k2, "0.01"]),
            2 => s(&["BLMOVE", &k, &k2, "LEFT", "RIGHT", "0.01"]),
            3 => s(&["BLMPOP", "0.01", "2", &k, &k2, "RIGHT", "COUNT", "2"]),
            _ => s(&["BRPOPLPUSH", &k, &k2, "0.01"]),
        },
        // Consumer groups (no idle times or "*" IDs in any reply compared).
        116 => {
            let mut c = s(&["XGROUP", "CREATE", &k, "g", r.pick(&["0", "$", "3-0"])]);
            if r.chance(50) {
                c.push("MKSTREAM".into());
            }
            c
        }
        117 => s(&[
            "XREADGROUP",
            "GROUP",
            "g",
            r.pick(&["c1", "c2"]),
            "COUNT",
            "2",
            "STREAMS",
            &k,
            r.pick(&[">", "0"]),
        ]),
        118 => s(&["XACK", &k, "g", &format!("{}-{}", r.int(0, 6), r.int(0, 2))]),
        119 => s(&["XPENDING", &k, "g"]),
        120 => s(&[
            "XAUTOCLAIM",
            &k,
            "g",
            "c3",
            "0",
            "0-0",
            "COUNT",
            "2",
            "JUSTID",
        ]),
        121 => {
            if r.chance(50) {
                s(&["XGROUP", "DESTROY", &k, "g"])
            } else {
                s(&["XGROUP", "CREATECONSUMER", &k, "g", "c9"])
            }
        }
        // SORT with BY/GET patterns and STORE.
        122 => {
            let mut c = s(&["SORT", &k]);
            match r.below(4) {
                0 => c.extend(s(&["BY", "nosort"])),
                1 => c.extend(s(&["BY", "k*", "GET", "#", "GET", "k*"])),
                2 => c.extend(s(&["STORE", &k2])),
                _ => c.extend(s(&["ALPHA", "LIMIT", "1", "3", "STORE", &k2])),
            }
            c
        }
        123 => s(&["RENAME", &k, &k]),
        124 => s(&["SMISMEMBER", &k, &m, &member(r), &member(r)]),
        // No out-of-range floats such as 1e400: parsing one leaves errno at ERANGE in
        // Redis, and its SORT reads errno without clearing it, so every later numeric SORT
        // fails there until some other call overwrites errno.
        125 => s(&[
            "ZADD",
            &k,
            r.pick(&["1e300", "-1e300", "0x10", "1e-300"]),
            &m,
        ]),
        126 => s(&[
            "HINCRBYFLOAT",
            &k,
            "f",
            r.pick(&["0.1", "1e17", "-0.1", "3.0e2"]),
        ]),
        127 => s(&[
            "INCRBYFLOAT",
            &k,
            r.pick(&["0.1", "1e17", "-0.2", "1.5e-7"]),
        ]),
        128 => s(&["APPEND", &k, &"y".repeat(r.int(1, 50) as usize)]),
        129 => s(&["SUBSTR", &k, &index(r), &index(r)]),
        130 => s(&["LPOS", &k, &m, "COUNT", "0", "MAXLEN", "3"]),
        131 => s(&["TOUCH", &k, &k2]),
        // DUMP on each server, RESTORE of the other's payload (see run_seed): respgate reads
        // what Redis writes and Redis accepts what respgate writes.
        132..=133 => s(&["DUMPSWAP", &k, &k2]),
        134 => {
            let script = r.pick(&[
                "return redis.call('SET', KEYS[1])",
                "return redis.sha1hex(ARGV[1])",
                "return cjson.decode('[1,2,{\"a\":3}]')[3].a",
                "return bit.band(tonumber(ARGV[1]) or 0, 6)",
                "return redis.call('EXPIRE', KEYS[1], 'x')",
                "return redis.call('GET', KEYS[1], 'extra')",
                "return {err = 'my error'}",
                "return {ok = 'fine'}",
                "local t = {} t[1] = 'a' t[3] = 'c' return t",
                "return redis.call('LRANGE', KEYS[1], 0, -1)",
                "return redis.call('ZSCORE', KEYS[1], ARGV[1])",
                "return redis.call('HGET', KEYS[1], ARGV[1])",
                "return 1.5e300",
                "return -0.9",
            ]);
            s(&["EVAL", script, "1", &k, &v])
        }
        135 => s(&[
            "EVALSHA",
            r.pick(&["ffffffffffffffffffffffffffffffffffffffff", "abc"]),
            "0",
        ]),
        136 => s(&["OBJECT", r.pick(&["FREQ", "NOSUCH"]), &k]),
        137 => s(&[r.pick(&["XINFO", "XINFO"]), "STREAM", &k]),
        138 => s(&["XINFO", "GROUPS", &k]),
        139 => {
            let mut c = s(&["XADD", &k]);
            match r.below(4) {
                0 => c.push("NOMKSTREAM".into()),
                1 => c.extend(s(&["MINID", r.pick(&["2", "4-0"])])),
                2 => c.extend(s(&["MAXLEN", "~", "3", "LIMIT", "1"])),
                _ => c.extend(s(&["MAXLEN", "=", "1"])),
            }
            c.extend([
                format!("{}-{}", r.int(0, 9), r.int(0, 3)),
                m.clone(),
                v.clone(),
            ]);
            c
        }
        // Times already past (the key goes at once): a TTL of a few milliseconds would
        // expire at different steps on the two servers.
        140 => s(&[
            r.pick(&["EXPIRE", "PEXPIRE", "PEXPIREAT", "EXPIREAT"]),
            &k,
            r.pick(&["-1", "0", "-100"]),
        ]),
        141 => s(&[
            r.pick(&["EXPIREAT", "PEXPIREAT"]),
            &k,
            r.pick(&["4102444800", "4102444800000"]),
        ]),
        // Future times only: a key SET with a past EXAT/PXAT lingers, expired, until Redis's
        // active expiry finds it, and DBSIZE counts it until then.
        142 => {
            let (opt, at) = if r.chance(50) {
                ("EXAT", "4102444800")
            } else {
                ("PXAT", "4102444800000")
            };
            s(&["SET", &k, &v, opt, r.pick(&[at, "0", "x"])])
        }
        143 => {
            let mut c = s(&["LCS", &k, &k2, "IDX"]);
            if r.chance(50) {
                c.extend(s(&["MINMATCHLEN", r.pick(&["1", "2", "-1"])]));
            }
            if r.chance(50) {
                c.push("WITHMATCHLEN".into());
            }
            c
        }
        144 => s(&["ZINTERCARD", "2", &k, &k2]),
        _ => {
            let mut c = s(&[r.pick(&["ZMPOP", "ZMPOP", "BZMPOP"]), "2", &k, &k2]);
            if c[0] == "BZMPOP" {
                c.insert(1, "0.01".into());
            }
            c.push(r.pick(&["MIN", "MAX"]).into());
            if r.chance(50) {
                c.extend(s(&["COUNT", &count(r)]));
            }
            c
        }
    };
    let compare = match cmd[0].as_str() {
        "SMEMBERS" | "SINTER" | "SUNION" | "SDIFF" | "HKEYS" | "HVALS" | "HGETALL" | "KEYS" => {
            Unordered
        }
        "ZRANGEBYLEX" | "ZREVRANGEBYLEX" | "ZLEXCOUNT" | "ZREMRANGEBYLEX" => Lex,
        "ZRANGE" if cmd.iter().any(|a| a == "BYLEX") => Lex,
        // A set's hash-table order (Redis seeds its hash function per process).
        "SORT" if cmd.iter().any(|a| a == "nosort") => Unordered,
        "EVAL" if cmd[1].contains("HGETALL") => Unordered,
        _ => Exact,
    };
    (cmd, compare)
}

fn ttl_class(v: &Value) -> Value {
    match v {
        Value::Int(n) if *n >= 0 => Value::Simple("remaining".into()),
        other => other.clone(),
    }
}

/// The whole data set as one comparable value: each key's type and contents.
fn snapshot(conn: &mut Conn, cluster: bool) -> Value {
    let mut out = Vec::new();
    for k in KEYS {
        let tagged = format!("{{t}}{k}");
        let k = if cluster { tagged.as_str() } else { k };
        let t = conn.cmd(&[b"TYPE", k.as_bytes()]);
        let ty = t
            .as_bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let contents = match ty.as_deref() {
            Some("string") => conn.cmd(&[b"GET", k.as_bytes()]),
            Some("list") => conn.cmd(&[b"LRANGE", k.as_bytes(), b"0", b"-1"]),
            Some("hash") => conn.cmd(&[b"HGETALL", k.as_bytes()]).sorted(),
            Some("set") => conn.cmd(&[b"SMEMBERS", k.as_bytes()]).sorted(),
            Some("zset") => conn.cmd(&[b"ZRANGE", k.as_bytes(), b"0", b"-1", b"WITHSCORES"]),
            Some("stream") => conn.cmd(&[b"XRANGE", k.as_bytes(), b"-", b"+"]),
            _ => Value::NullBulk,
        };
        // The encoding too: clients can see it (OBJECT ENCODING), and it decides answers
        // Redis leaves unspecified (lex ranges over unequal scores).
        let encoding = conn.cmd(&[b"OBJECT", b"ENCODING", k.as_bytes()]);
        out.push(Value::Array(vec![t, encoding, contents]));
    }
    Value::Array(out)
}

/// Runs `steps` random commands from `seed` on both servers; returns the mismatches (at most
/// a few: after the first, the data sets may differ and later ones only echo it).
/// How respgate is reached besides the protocol version: as a tenant (AUTH user pass first:
/// its view must be a private Redis's), in front of a cluster (every key gets the hash tag
/// `{t}` on both sides, so multi-key commands stay in one slot), pipelined.
#[derive(Clone, Copy, Default)]
struct Via<'a> {
    auth: Option<(&'a str, &'a str)>,
    cluster: bool,
    /// Commands written back to back before their replies are read (0 or 1: one by one).
    pipeline: usize,
}

fn run_seed(
    seed: u64,
    steps: usize,
    resp3: bool,
    redis: &str,
    gate: &str,
    via: Via,
) -> Vec<String> {
    let mut rng = Rng(seed);
    let mut want = Conn::connect(redis);
    let mut got = Conn::connect(gate);
    if let Some((user, pass)) = via.auth {
        assert_eq!(
            got.cmd(&[b"AUTH", user.as_bytes(), pass.as_bytes()]),
            Value::Simple("OK".into())
        );
    }
    for c in [&mut want, &mut got] {
        c.cmd_str("FLUSHALL");
        if resp3 {
            assert!(!c.cmd_str("HELLO 3").is_error());
        }
    }
    let mut failures = Vec::new();
    let log = std::env::var_os("RANDOM_DIFF_LOG").is_some();
    // Inside MULTI: how each queued command's reply in EXEC's array is compared. Every
    // command is queued there, the harness's own too, so it checks nothing meanwhile.
    let mut queued: Option<Vec<Compare>> = None;
    let mut step = 0;
    while step < steps && failures.len() < 4 {
        // One batch: `via.pipeline` commands written back to back before any reply is read
        // (1: one at a time, with the checks that need a round trip of their own).
        let mut batch: Vec<(usize, Vec<String>, Compare)> = Vec::new();
        while batch.len() < via.pipeline.max(1) && step < steps {
            let this = step;
            step += 1;
            let (mut args, compare) = command(&mut rng);
            if via.cluster && !tag_keys(&mut args) {
                continue;
            }
            // A tenant's transaction runs on one cluster node, so respgate refuses the
            // commands that would have to reach every master (a documented limit).
            if via.cluster
                && via.auth.is_some()
                && queued.is_some()
                && matches!(args[0].as_str(), "DBSIZE" | "FLUSHDB" | "FLUSHALL")
            {
                continue;
            }
            let alone = via.pipeline <= 1 && queued.is_none();
            if compare == Compare::Lex
                && (!alone
                    || want.cmd(&[b"OBJECT", b"ENCODING", args[1].as_bytes()])
                        == Value::Bulk(b"skiplist".to_vec()))
            {
                continue;
            }
            if args[0] == "DUMPSWAP" {
                if alone {
                    dump_swap(
                        &mut want,
                        &mut got,
                        &args,
                        this,
                        seed,
                        resp3,
                        log,
                        &mut failures,
                    );
                }
                continue;
            }
            batch.push((this, args, compare));
        }
        for (this, args, _) in &batch {
            if log {
                eprintln!("  send {this}: {args:?}");
            }
            let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            want.send(&refs);
            got.send(&refs);
        }
        let mut check_data = false;
        for (this, args, compare) in &batch {
            let (a, b) = (want.read(), got.read());
            if log {
                eprintln!("{this}: {} -> {a:?}", args.join(" "));
            }
            let same = match (args[0].as_str(), &queued, &a, &b) {
                ("EXEC", Some(modes), Value::Array(x), Value::Array(y))
                    if x.len() == modes.len() && y.len() == modes.len() =>
                {
                    modes
                        .iter()
                        .zip(x.iter().zip(y))
                        .all(|(m, (x, y))| same_reply(*m, x, y))
                }
                _ => same_reply(*compare, &a, &b),
            };
            if !same {
                failures.push(format!(
                    "seed {seed} step {this} (resp3: {resp3}): {}\n{}",
                    args.join(" "),
                    difference(&a, &b)
                ));
            }
            match args[0].as_str() {
                "MULTI" if a == Value::Simple("OK".into()) => queued = Some(Vec::new()),
                "EXEC" | "DISCARD" => queued = None,
                _ => {
                    if let Some(modes) = queued.as_mut()
                        && a == Value::Simple("QUEUED".into())
                    {
                        modes.push(*compare);
                    }
                }
            }
            check_data |= !same || this % 250 == 249 || this + 1 == steps;
        }
        if check_data && queued.is_none() {
            let (sa, sb) = (
                snapshot(&mut want, via.cluster),
                snapshot(&mut got, via.cluster),
            );
            if sa != sb {
                failures.push(format!(
                    "seed {seed} after step {} (resp3: {resp3}): data sets differ\n{}",
                    step - 1,
                    difference(&sa, &sb)
                ));
            }
        }
    }
    failures
}

/// DUMPSWAP from to: each server restores the other's DUMP of `from` into `to` (nothing
/// when the key is absent), and the two RESTORE replies must match.
#[allow(clippy::too_many_arguments)]
fn dump_swap(
    want: &mut Conn,
    got: &mut Conn,
    args: &[String],
    step: usize,
    seed: u64,
    resp3: bool,
    log: bool,
    failures: &mut Vec<String>,
) {
    let (from, to) = (args[1].as_bytes(), args[2].as_bytes());
    let (pa, pb) = (want.cmd(&[b"DUMP", from]), got.cmd(&[b"DUMP", from]));
    let (Value::Bulk(pa), Value::Bulk(pb)) = (pa, pb) else {
        return;
    };
    let (a, b) = (
        want.cmd(&[b"RESTORE", to, b"0", &pb, b"REPLACE"]),
        got.cmd(&[b"RESTORE", to, b"0", &pa, b"REPLACE"]),
    );
    if log {
        eprintln!("{step}: {} -> {a:?} / {b:?}", args.join(" "));
    }
    if a != b {
        failures.push(format!(
            "seed {seed} step {step} (resp3: {resp3}): RESTORE {} from the other's DUMP of {}\n{}",
            args[2],
            args[1],
            difference(&a, &b)
        ));
    }
}

/// Cluster mode: puts the hash tag `{t}` in front of every key argument, as the harness of
/// tests/differential.rs does. False for what a cluster refuses whatever the slots (SORT's
/// BY/GET patterns name keys outside the command).
fn tag_keys(args: &mut [String]) -> bool {
    if args[0] == "SORT" && args.iter().any(|a| a == "BY" || a == "GET") {
        return false;
    }
    if args[0] == "DUMPSWAP" {
        for a in &mut args[1..] {
            *a = format!("{{t}}{a}");
        }
        return true;
    }
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    for p in common::redis_cluster::key_positions(&refs) {
        if let Some(a) = args.get_mut(p) {
            *a = format!("{{t}}{a}");
        }
    }
    true
}

fn same_reply(compare: Compare, a: &Value, b: &Value) -> bool {
    match compare {
        Compare::Exact | Compare::Lex => a == b,
        Compare::Unordered => a.sorted() == b.sorted(),
        Compare::Ttl => ttl_class(a) == ttl_class(b),
    }
}

/// The two replies, narrowed to the first differing element of equally long arrays.
fn difference(a: &Value, b: &Value) -> String {
    let mut path = String::new();
    let (mut a, mut b) = (a, b);
    while let (Value::Array(x), Value::Array(y)) = (a, b) {
        let Some(i) = (0..x.len().min(y.len())).find(|&i| x[i] != y[i]) else {
            break;
        };
        if x.len() != y.len() {
            break;
        }
        path.push_str(&format!("[{i}]"));
        (a, b) = (&x[i], &y[i]);
    }
    format!("  at {path}\n  redis:    {a:?}\n  respgate: {b:?}")
}

/// Seeds and steps: the defaults, or one seed from RANDOM_DIFF_SEED.
fn plan(default_seeds: &[u64], default_steps: usize) -> (Vec<u64>, usize) {
    let steps = std::env::var("RANDOM_DIFF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_steps);
    match std::env::var("RANDOM_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => (vec![seed], steps),
        None => (default_seeds.to_vec(), steps),
    }
}

fn run_plan(seeds: &[u64], steps: usize, resp3: bool, redis: &str, gate: &str, via: Via) {
    let mut failures = Vec::new();
    for &seed in seeds {
        failures.extend(run_seed(seed, steps, resp3, redis, gate, via));
    }
    assert!(
        failures.is_empty(),
        "{} mismatch(es) with real Redis:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// [`run_plan`] in RESP2, then in RESP3.
fn run_plan_both(seeds: &[u64], steps: usize, redis: &str, gate: &str, via: Via) {
    run_plan(seeds, steps, false, redis, gate, via);
    run_plan(seeds, steps, true, redis, gate, via);
}

/// The embedded engine against redis-server, RESP2.
#[test]
fn random_commands_match_real_redis() {
    let redis = RedisServer::start();
    let gate = Respgate::start();
    let (seeds, steps) = plan(&[1, 2, 3, 4], 5000);
    run_plan(
        &seeds,
        steps,
        false,
        &redis.addr(),
        &gate.addr,
        Via::default(),
    );
    // Pipelined: replies in order, transactions and blocking commands included.
    let pipelined = Via {
        pipeline: 16,
        ..Via::default()
    };
    run_plan(
        &seeds[..1],
        steps,
        false,
        &redis.addr(),
        &gate.addr,
        pipelined,
    );
}

/// The embedded engine against redis-server, RESP3 (maps, sets, doubles, nulls).
#[test]
fn random_commands_match_real_redis_resp3() {
    let redis = RedisServer::start();
    let gate = Respgate::start();
    let (seeds, steps) = plan(&[11, 12], 5000);
    run_plan(
        &seeds,
        steps,
        true,
        &redis.addr(),
        &gate.addr,
        Via::default(),
    );
}

/// Through standalone forwarding: the proxy must hand back exactly what Redis answers, in
/// both protocols.
#[test]
fn random_commands_match_real_redis_through_forwarding() {
    let redis = RedisServer::start();
    let backend = RedisServer::start();
    let gate = Respgate::standalone(&backend.addr(), "");
    let (seeds, steps) = plan(&[21], 3000);
    run_plan(
        &seeds,
        steps,
        false,
        &redis.addr(),
        &gate.addr,
        Via::default(),
    );
    run_plan(
        &seeds,
        steps,
        true,
        &redis.addr(),
        &gate.addr,
        Via::default(),
    );
    // Pipelined: replies must come back in order, transactions and blocking included.
    let pipelined = Via {
        pipeline: 16,
        ..Via::default()
    };
    run_plan(&seeds, steps, false, &redis.addr(), &gate.addr, pipelined);
}

/// A tenant whose prefix holds glob metacharacters and a backslash, on the embedded engine:
/// keys, KEYS and SORT patterns, scripts' KEYS and every reply must look exactly like a
/// private Redis. (No `*` in it: a tenant whose prefix has one may not use SORT BY/GET
/// patterns, a documented limit that tests/tenants.rs covers.)
#[test]
fn random_commands_match_real_redis_as_a_tenant() {
    let redis = RedisServer::start();
    let config = common::respgate::temp_config(
        "[[tenants]]\nname = \"t\"\nusername = \"ut\"\npassword = \"pt\"\nprefix = 't?[\\'\n",
    );
    let gate = Respgate::start_with(&["--config", &config]);
    let (seeds, steps) = plan(&[31], 4000);
    let via = Via {
        auth: Some(("ut", "pt")),
        ..Via::default()
    };
    run_plan_both(&seeds, steps, &redis.addr(), &gate.addr, via);
}

/// In front of a 3-master/3-replica Redis Cluster (all keys of a command in one slot).
#[test]
fn random_commands_match_real_redis_through_cluster() {
    let redis = RedisServer::start();
    let cluster = common::redis_cluster::RedisCluster::start();
    let gate = Respgate::cluster(&cluster.addrs(), "");
    let (seeds, steps) = plan(&[41], 3000);
    let via = Via {
        cluster: true,
        ..Via::default()
    };
    run_plan(&seeds, steps, false, &redis.addr(), &gate.addr, via);
    let via = Via { pipeline: 8, ..via };
    run_plan(&seeds, steps, false, &redis.addr(), &gate.addr, via);
    drop(gate);
    // A tenant in front of the same cluster: the prefix goes outside the hash tag, fan-outs
    // and redirects included. Its backend user (on every node: ACLs are per node) lets it
    // run scripts.
    for node in cluster.addrs() {
        assert_eq!(
            Conn::connect(&node).cmd_str(TENANT_BACKEND_ACL),
            Value::Simple("OK".into())
        );
    }
    let gate = Respgate::cluster(&cluster.addrs(), TENANT);
    let via = Via {
        auth: Some(("ut", "pt")),
        cluster: true,
        ..Via::default()
    };
    run_plan_both(&seeds, steps, &redis.addr(), &gate.addr, via);
}

/// Through respgate following a Sentinel-managed master (with a replica attached).
#[test]
fn random_commands_match_real_redis_through_sentinel() {
    let redis = RedisServer::start();
    let setup = common::redis_sentinel::SentinelSetup::start_stable();
    let gate = setup.respgate("");
    let (seeds, steps) = plan(&[61], 3000);
    run_plan(
        &seeds,
        steps,
        false,
        &redis.addr(),
        &gate.addr,
        Via::default(),
    );
    let pipelined = Via {
        pipeline: 16,
        ..Via::default()
    };
    run_plan(&seeds, steps, true, &redis.addr(), &gate.addr, pipelined);
}

/// The tenant of the forwarding modes: a prefix with glob metacharacters and a backslash,
/// and a backend user of its own, so its scripts are allowed (respgate refuses a tenant's
/// scripts otherwise); confinement by that user's ACL is tests/tenants_forwarding.rs's
/// subject, so the user may touch every key here.
const TENANT: &str = "[[tenants]]\nname = \"t\"\nusername = \"ut\"\npassword = \"pt\"\n\
    prefix = 't?[\\'\nbackend_username = \"rt\"\nbackend_password = \"rt-pw\"\n";
const TENANT_BACKEND_ACL: &str = "ACL SETUSER rt on >rt-pw ~* &* +@all";

/// A tenant through standalone forwarding: the namespace rewrite of commands and replies on
/// the forwarding path must leave the tenant exactly the view of a private Redis.
#[test]
fn random_commands_match_real_redis_as_a_tenant_through_forwarding() {
    let redis = RedisServer::start();
    let backend = RedisServer::start();
    assert_eq!(
        Conn::connect(&backend.addr()).cmd_str(TENANT_BACKEND_ACL),
        Value::Simple("OK".into())
    );
    let gate = Respgate::standalone(&backend.addr(), TENANT);
    let (seeds, steps) = plan(&[51], 3000);
    let via = Via {
        auth: Some(("ut", "pt")),
        ..Via::default()
    };
    run_plan_both(&seeds, steps, &redis.addr(), &gate.addr, via);
    let via = Via {
        pipeline: 16,
        ..via
    };
    run_plan(&seeds, steps, false, &redis.addr(), &gate.addr, via);
}

/// Through standalone forwarding over mutual TLS, pipelined: rustls's buffering between
/// respgate and the backend must change nothing a client sees.
#[test]
fn random_commands_match_real_redis_through_tls_forwarding() {
    let pki = common::tls::Pki::generate();
    let redis = RedisServer::start();
    let backend = pki.redis_server(true);
    let gate = Respgate::standalone(&backend.addr(), &pki.backend_tls_mutual());
    let (seeds, steps) = plan(&[71], 3000);
    let pipelined = Via {
        pipeline: 16,
        ..Via::default()
    };
    run_plan_both(&seeds, steps, &redis.addr(), &gate.addr, pipelined);
}
