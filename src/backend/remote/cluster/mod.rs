//! Redis Cluster building blocks, pure where possible: hash slots and the slot of a command
//! ([`slots`]), the slot map and its discovery and MOVED/ASK handling ([`topology`]),
//! multi-key splitting and fan-out merging ([`split`]), the routing decision that combines
//! them ([`route`]), and the raw-frame readers they share ([`raw`]); [`router`] holds the
//! live slot map and node connections and runs redirections, splits and fan-outs for the
//! forwarding path (src/server/forward.rs); [`shard_bridge`] carries SSUBSCRIBE to the
//! masters that own the shard channels.

pub mod raw;
pub mod route;
pub mod router;
pub mod shard_bridge;
pub mod slots;
pub mod split;
pub mod topology;

#[cfg(test)]
mod tests {
    //! Whatever a backend sends, reading it must not panic: valid replies are mutated
    //! (bytes flipped, cut, spliced) and fed to every reader in this module.

    use bytes::Bytes;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::raw;
    use super::split::{Merge, MultiKey, merge, merge_fan_out, scan_reply, split};
    use super::topology::{Topology, parse_redirect, transient_error};

    const SAMPLES: &[&[u8]] = &[
        b"*1\r\n*4\r\n:0\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n*0\r\n\
*3\r\n$9\r\n127.0.0.1\r\n:7001\r\n%1\r\n$8\r\nhostname\r\n$0\r\n\r\n",
        b"*3\r\n$1\r\na\r\n$-1\r\n_\r\n",
        b"*2\r\n$2\r\n12\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        b"-MOVED 3999 127.0.0.1:6381\r\n",
        b"!12\r\nASK 2 ?:6381\r\n",
        b":12\r\n",
        b"+OK\r\n",
        b"*2\r\n:1\r\n:0\r\n",
        b"|1\r\n+a\r\n+b\r\n*1\r\n,1.5\r\n",
    ];

    fn mutate(rng: &mut StdRng, sample: &[u8]) -> Vec<u8> {
        let mut v = sample.to_vec();
        for _ in 0..rng.random_range(1..4) {
            if v.is_empty() {
                break;
            }
            let at = rng.random_range(0..v.len());
            match rng.random_range(0..4) {
                0 => v[at] = rng.random(),
                1 => v.truncate(at),
                2 => v.insert(
                    at,
                    *b"*$:-_%~|!\r\n0123456789-"
                        .get(rng.random_range(0..22))
                        .unwrap_or(&b'x'),
                ),
                _ => {
                    let other = SAMPLES[rng.random_range(0..SAMPLES.len())];
                    v.splice(at..at, other.iter().copied());
                }
            }
        }
        v
    }

    #[test]
    fn hostile_replies_never_panic() {
        let mut rng = StdRng::seed_from_u64(0x5EED);
        let argv: Vec<Bytes> = ["MGET", "foo", "bar", "{foo}x"]
            .iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        let Some(mget) = split(MultiKey::Mget, &argv) else {
            panic!("MGET not split")
        };
        for _ in 0..20_000 {
            let sample = SAMPLES[rng.random_range(0..SAMPLES.len())];
            let bytes = Bytes::from(mutate(&mut rng, sample));
            let _ = raw::decode(&bytes);
            let _ = raw::elements(&bytes);
            let _ = raw::integer(&bytes);
            let _ = raw::error_text(&bytes);
            let _ = Topology::from_cluster_slots(&bytes, "h:1");
            let _ = parse_redirect(&bytes, "h:1");
            let _ = transient_error(&bytes);
            let _ = scan_reply(&bytes, 0, 2);
            let pair = [bytes.clone(), Bytes::from_static(SAMPLES[1])];
            let _ = merge(&mget, &pair);
            for how in [
                Merge::SumIntegers,
                Merge::Same,
                Merge::ConcatArrays,
                Merge::AndIntegerArrays,
                Merge::FirstNonNull,
            ] {
                let _ = merge_fan_out(how, &pair);
            }
        }
    }
}
