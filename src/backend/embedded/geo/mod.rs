//! Geospatial commands (geo.c semantics) over sorted sets whose scores are 52-bit
//! geohashes: GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH, GEOSEARCHSTORE, GEORADIUS,
//! GEORADIUSBYMEMBER and their _RO variants. The hash arithmetic lives in [`geohash`].

mod geohash;

use std::cmp::Ordering;

use bytes::Bytes;

use super::Ctx;
use super::num::parse_i64;
use super::pqsort::partial_sort;
use super::value::Value;
use super::zset_cmds::{ScoreRange, ZSetValue, parse_score};
use crate::protocol::{Reply, errors};
use geohash::{Shape, ShapeKind};

const UNSUPPORTED_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
const CANNOT_DECODE_MEMBER: &str = "ERR could not decode requested zset member";
const NEED_RADIUS: &str = "ERR need numeric radius";
const NEED_WIDTH: &str = "ERR need numeric width";
const NEED_HEIGHT: &str = "ERR need numeric height";
const RADIUS_NEGATIVE: &str = "ERR radius cannot be negative";
const BOX_NEGATIVE: &str = "ERR height or width cannot be negative";
const COUNT_POSITIVE: &str = "ERR COUNT must be > 0";
const ANY_NEEDS_COUNT: &str = "ERR the ANY argument requires COUNT argument";

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("geoadd", geoadd);
    t.insert("geopos", geopos);
    t.insert("geodist", geodist);
    t.insert("geohash", geohash_cmd);
    t.insert("georadius", georadius);
    t.insert("georadius_ro", georadius_ro);
    t.insert("georadiusbymember", georadiusbymember);
    t.insert("georadiusbymember_ro", georadiusbymember_ro);
    t.insert("geosearch", geosearch);
    t.insert("geosearchstore", geosearchstore);
}

// ---------------------------------------------------------------------------------------
// Helpers

fn done(r: Result<Reply, Reply>) -> Reply {
    r.unwrap_or_else(|e| e)
}

fn opt_is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// Reads the zset at `key`: Ok(None) if absent, WRONGTYPE if another type.
fn read_zset<'c>(ctx: &'c mut Ctx, key: &Bytes) -> Result<Option<&'c ZSetValue>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::ZSet(z) => Ok(Some(z)),
            _ => Err(Reply::err(errors::WRONGTYPE)),
        },
    }
}

/// A float argument read like getDoubleFromObjectOrReply, with its error text.
fn float_or(b: &[u8], msg: &str) -> Result<f64, Reply> {
    parse_score(b).ok_or_else(|| Reply::err(msg))
}

/// extractLongLatOrReply: two floats inside the Mercator limits.
fn lon_lat(lon: &[u8], lat: &[u8]) -> Result<[f64; 2], Reply> {
    let x = float_or(lon, errors::NOT_FLOAT)?;
    let y = float_or(lat, errors::NOT_FLOAT)?;
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&x)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&y)
    {
        return Err(Reply::err(format!(
            "ERR invalid longitude,latitude pair {x:.6},{y:.6}"
        )));
    }
    Ok([x, y])
}

/// Metres per unit (extractUnitOrReply).
fn unit(b: &[u8]) -> Result<f64, Reply> {
    if opt_is(b, "m") {
        Ok(1.0)
    } else if opt_is(b, "km") {
        Ok(1000.0)
    } else if opt_is(b, "ft") {
        Ok(0.3048)
    } else if opt_is(b, "mi") {
        Ok(1609.34)
    } else {
        Err(Reply::err(UNSUPPORTED_UNIT))
    }
}

/// extractDistanceOrReply: (radius, metres per unit).
fn radius_arg(value: &[u8], u: &[u8]) -> Result<(f64, f64), Reply> {
    let r = float_or(value, NEED_RADIUS)?;
    if r < 0.0 {
        return Err(Reply::err(RADIUS_NEGATIVE));
    }
    Ok((r, unit(u)?))
}

/// extractBoxOrReply: (width, height, metres per unit).
fn box_arg(w: &[u8], h: &[u8], u: &[u8]) -> Result<(f64, f64, f64), Reply> {
    let width = float_or(w, NEED_WIDTH)?;
    let height = float_or(h, NEED_HEIGHT)?;
    if height < 0.0 || width < 0.0 {
        return Err(Reply::err(BOX_NEGATIVE));
    }
    Ok((width, height, unit(u)?))
}

/// A distance as Redis replies it: "%.4f" in a bulk string, whatever the protocol.
fn distance_reply(d: f64) -> Reply {
    Reply::bulk(format!("{d:.4}"))
}

/// A coordinate as addReplyHumanLongDouble prints it: "%.17Lf" with trailing zeros cut.
fn human_coord(v: f64) -> String {
    let mut s = format!("{v:.17}");
    if s.contains('.') {
        let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(trimmed);
    }
    if s == "-0" { "0".into() } else { s }
}

/// addReplyHumanLongDouble: a bulk string in RESP2, a RESP3 double in RESP3, both with the
/// human digits (not the `%.17g` of other doubles).
fn coord_reply(v: f64) -> Reply {
    Reply::DoubleText(human_coord(v))
}

fn position_reply(xy: [f64; 2]) -> Reply {
    Reply::Array(vec![coord_reply(xy[0]), coord_reply(xy[1])])
}

// ---------------------------------------------------------------------------------------
// GEOADD / GEOPOS / GEODIST / GEOHASH

fn geoadd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let (mut nx, mut xx) = (false, false);
        let mut idx = 2;
        while idx < argv.len() {
            let a = &argv[idx];
            if opt_is(a, "nx") {
                nx = true;
            } else if opt_is(a, "xx") {
                xx = true;
            } else if !opt_is(a, "ch") {
                break;
            }
            idx += 1;
        }
        let triples = &argv[idx..];
        if !triples.len().is_multiple_of(3) || (xx && nx) {
            return Err(Reply::err(errors::SYNTAX));
        }
        // Like Redis, rewrite into ZADD key [flags] score member ... and let ZADD work.
        let mut zargv: Vec<Bytes> = Vec::with_capacity(idx + triples.len() / 3 * 2);
        zargv.push(Bytes::from_static(b"zadd"));
        zargv.extend(argv[1..idx].iter().cloned());
        for t in triples.chunks(3) {
            let [x, y] = lon_lat(&t[0], &t[1])?;
            let bits = geohash::encode_wgs84(x, y).map_or(0, |h| h.align52());
            zargv.push(Bytes::from(bits.to_string()));
            zargv.push(t[2].clone());
        }
        let zadd = super::handlers()
            .get("zadd")
            .copied()
            .ok_or_else(|| Reply::err(errors::not_implemented("zadd")))?;
        Ok(zadd(ctx, &zargv))
    })())
}

fn geopos(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let z = read_zset(ctx, &argv[1])?;
        let scores: Vec<Option<f64>> = argv[2..]
            .iter()
            .map(|m| z.and_then(|z| z.score(m)))
            .collect();
        Ok(Reply::Array(
            scores
                .into_iter()
                .map(|s| match s {
                    Some(s) => position_reply(geohash::decode_score(s)),
                    None => Reply::NullArray,
                })
                .collect(),
        ))
    })())
}

fn geodist(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let to_meter = match argv.len() {
            4 => 1.0,
            5 => unit(&argv[4])?,
            _ => return Err(Reply::err(errors::SYNTAX)),
        };
        let Some(z) = read_zset(ctx, &argv[1])? else {
            return Ok(Reply::Null);
        };
        let (Some(a), Some(b)) = (z.score(&argv[2]), z.score(&argv[3])) else {
            return Ok(Reply::Null);
        };
        let [x1, y1] = geohash::decode_score(a);
        let [x2, y2] = geohash::decode_score(b);
        Ok(distance_reply(geohash::distance(x1, y1, x2, y2) / to_meter))
    })())
}

fn geohash_cmd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        let z = read_zset(ctx, &argv[1])?;
        Ok(Reply::Array(
            argv[2..]
                .iter()
                .map(|m| match z.and_then(|z| z.score(m)) {
                    Some(s) => Reply::bulk(geohash::geohash_string(s)),
                    None => Reply::Null,
                })
                .collect(),
        ))
    })())
}

// ---------------------------------------------------------------------------------------
// Searches

/// Which command form is being parsed (georadiusGeneric's flags).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    /// GEORADIUS[_RO] key lon lat radius unit ...
    RadiusCoords,
    /// GEORADIUSBYMEMBER[_RO] key member radius unit ...
    RadiusMember,
    /// GEOSEARCH key ... / GEOSEARCHSTORE dst key ...
    Search,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    None,
    Asc,
    Desc,
}

/// One match: what the reply or the stored set needs.
struct GeoPoint {
    member: Bytes,
    score: f64,
    /// Metres from the centre.
    dist: f64,
    xy: [f64; 2],
}

/// Collects the points inside `shape`, scanning the boxes in Redis's order and stopping
/// once `limit` (COUNT ... ANY; 0 = none) points were found.
fn points_in_shape(z: &ZSetValue, shape: &Shape, limit: usize) -> Vec<GeoPoint> {
    let mut out = Vec::new();
    for b in geohash::search_boxes(shape) {
        if limit > 0 && out.len() >= limit {
            break;
        }
        let (min, max) = geohash::box_score_range(b);
        let range = ScoreRange::new(min, false, max, true);
        for (m, score) in z.iter_score_range(&range) {
            let xy = geohash::decode_score(score);
            if let Some(dist) = shape.distance_if_inside(xy[0], xy[1]) {
                out.push(GeoPoint {
                    member: m.clone(),
                    score,
                    dist,
                    xy,
                });
                if limit > 0 && out.len() >= limit {
                    break;
                }
            }
        }
    }
    out
}

fn georadius(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(search_generic(
        ctx,
        argv,
        1,
        Form::RadiusCoords,
        true,
        false,
    ))
}

fn georadius_ro(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(search_generic(
        ctx,
        argv,
        1,
        Form::RadiusCoords,
        false,
        false,
    ))
}

fn georadiusbymember(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(search_generic(
        ctx,
        argv,
        1,
        Form::RadiusMember,
        true,
        false,
    ))
}

fn georadiusbymember_ro(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(search_generic(
        ctx,
        argv,
        1,
        Form::RadiusMember,
        false,
        false,
    ))
}

fn geosearch(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(search_generic(ctx, argv, 1, Form::Search, false, false))
}

fn geosearchstore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(search_generic(ctx, argv, 2, Form::Search, false, true))
}

/// georadiusGeneric: parses in Redis's order (source type first, then the centre and
/// extent of the legacy forms, then the options left to right) and runs the search.
fn search_generic(
    ctx: &mut Ctx,
    argv: &[Bytes],
    src_idx: usize,
    form: Form,
    store_allowed: bool,
    search_store: bool,
) -> Result<Reply, Reply> {
    let src = &argv[src_idx];
    // Only the source's presence and type are needed while parsing; member lookups read
    // the set again below.
    let exists = read_zset(ctx, src)?.is_some();
    let member_xy = |ctx: &mut Ctx, m: &Bytes| -> Result<[f64; 2], Reply> {
        let s = read_zset(ctx, src)?.and_then(|z| z.score(m));
        s.map(geohash::decode_score)
            .ok_or_else(|| Reply::err(CANNOT_DECODE_MEMBER))
    };
    let mut center: [f64; 2] = [0.0, 0.0];
    let mut kind = ShapeKind::Radius(0.0);
    let mut conversion = 1.0;
    let mut storekey: Option<Bytes> = if search_store {
        Some(argv[1].clone())
    } else {
        None
    };
    let base = match form {
        Form::RadiusCoords => {
            center = lon_lat(&argv[2], &argv[3])?;
            let (r, c) = radius_arg(&argv[4], &argv[5])?;
            kind = ShapeKind::Radius(r);
            conversion = c;
            6
        }
        Form::RadiusMember if !exists => 5,
        Form::RadiusMember => {
            center = member_xy(ctx, &argv[2])?;
            let (r, c) = radius_arg(&argv[3], &argv[4])?;
            kind = ShapeKind::Radius(r);
            conversion = c;
            5
        }
        Form::Search => src_idx + 1,
    };
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut storedist = false;
    let mut order = Order::None;
    let mut count: i64 = 0;
    let search = form == Form::Search;
    let opts = &argv[base.min(argv.len())..];
    let mut i = 0;
    while i < opts.len() {
        let a = &opts[i];
        let left = opts.len() - i - 1;
        if opt_is(a, "withdist") {
            withdist = true;
        } else if opt_is(a, "withhash") {
            withhash = true;
        } else if opt_is(a, "withcoord") {
            withcoord = true;
        } else if opt_is(a, "any") {
            any = true;
        } else if opt_is(a, "asc") {
            order = Order::Asc;
        } else if opt_is(a, "desc") {
            order = Order::Desc;
        } else if opt_is(a, "count") && left >= 1 {
            count = parse_i64(&opts[i + 1]).ok_or_else(|| Reply::err(errors::NOT_INTEGER))?;
            if count <= 0 {
                return Err(Reply::err(COUNT_POSITIVE));
            }
            i += 1;
        } else if (opt_is(a, "store") || opt_is(a, "storedist"))
            && left >= 1
            && store_allowed
            && !search
        {
            storekey = Some(opts[i + 1].clone());
            storedist = opt_is(a, "storedist");
            i += 1;
        } else if opt_is(a, "storedist") && search && search_store {
            storedist = true;
        } else if opt_is(a, "frommember") && left >= 1 && search && !fromloc {
            if exists {
                center = member_xy(ctx, &opts[i + 1])?;
            }
            frommember = true;
            i += 1;
        } else if opt_is(a, "fromlonlat") && left >= 2 && search && !frommember {
            center = lon_lat(&opts[i + 1], &opts[i + 2])?;
            fromloc = true;
            i += 2;
        } else if opt_is(a, "byradius") && left >= 2 && search && !bybox {
            let (r, c) = radius_arg(&opts[i + 1], &opts[i + 2])?;
            kind = ShapeKind::Radius(r);
            conversion = c;
            byradius = true;
            i += 2;
        } else if opt_is(a, "bybox") && left >= 3 && search && !byradius {
            let (width, height, c) = box_arg(&opts[i + 1], &opts[i + 2], &opts[i + 3])?;
            kind = ShapeKind::Box { width, height };
            conversion = c;
            bybox = true;
            i += 3;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        i += 1;
    }
    let name = String::from_utf8_lossy(&argv[0]);
    if storekey.is_some() && (withdist || withhash || withcoord) {
        return Err(Reply::err(format!(
            "ERR {} is not compatible with WITHDIST, WITHHASH and WITHCOORD options",
            if search_store {
                "GEOSEARCHSTORE"
            } else {
                "STORE option in GEORADIUS"
            }
        )));
    }
    if search && !(frommember || fromloc) {
        return Err(Reply::err(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search && !(byradius || bybox) {
        return Err(Reply::err(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if any && count == 0 {
        return Err(Reply::err(ANY_NEEDS_COUNT));
    }
    if !exists {
        return Ok(match storekey {
            Some(dst) => {
                if ctx.db().remove(&dst).is_some() {
                    ctx.dirty(1);
                }
                Reply::Integer(0)
            }
            None => Reply::Array(Vec::new()),
        });
    }
    if count != 0 && order == Order::None && !any {
        order = Order::Asc;
    }
    let shape = Shape {
        lon: center[0],
        lat: center[1],
        kind,
        conversion,
    };
    let limit = if any {
        usize::try_from(count).unwrap_or(usize::MAX)
    } else {
        0
    };
    let mut points = match read_zset(ctx, src)? {
        Some(z) => points_in_shape(z, &shape, limit),
        None => Vec::new(),
    };
    if points.is_empty() && storekey.is_none() {
        return Ok(Reply::Array(Vec::new()));
    }
    // How many are returned; Redis sorts only what it returns: all of them with qsort
    // (glibc's is a stable merge sort, like sort_by), or the first `returned` with its
    // partial quicksort, whose order of equal distances is its own (not stable).
    let returned = match usize::try_from(count) {
        Ok(c) if c > 0 && c < points.len() => c,
        _ => points.len(),
    };
    if order != Order::None {
        let desc = order == Order::Desc;
        // sort_gp_asc/desc compare distances only (never NaN).
        let cmp = |a: &GeoPoint, b: &GeoPoint| {
            let c = a.dist.partial_cmp(&b.dist).unwrap_or(Ordering::Equal);
            if desc { c.reverse() } else { c }
        };
        if returned == points.len() {
            points.sort_by(cmp);
        } else {
            partial_sort(&mut points, &cmp, 0, returned as i64 - 1);
        }
    }
    points.truncate(returned);
    let Some(dst) = storekey else {
        let with = withdist || withhash || withcoord;
        let items = points
            .into_iter()
            .map(|p| {
                if !with {
                    return Reply::Bulk(p.member);
                }
                let mut item = vec![Reply::Bulk(p.member)];
                if withdist {
                    item.push(distance_reply(p.dist / conversion));
                }
                if withhash {
                    item.push(Reply::Integer(p.score as i64));
                }
                if withcoord {
                    item.push(position_reply(p.xy));
                }
                Reply::Array(item)
            })
            .collect();
        return Ok(Reply::Array(items));
    };
    let n = points.len();
    if n == 0 {
        if ctx.db().remove(&dst).is_some() {
            ctx.dirty(1);
        }
        return Ok(Reply::Integer(0));
    }
    let pairs: Vec<(Bytes, f64)> = points
        .into_iter()
        .map(|p| {
            let score = if storedist {
                p.dist / conversion
            } else {
                p.score
            };
            (p.member, score)
        })
        .collect();
    let z = ZSetValue::from_pairs(pairs, &ctx.state.tunables);
    let now = ctx.now_ms;
    ctx.db().set(&dst, Value::ZSet(Box::new(z)), None, now);
    ctx.dirty(n as u64);
    Ok(Reply::Integer(n as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_coordinates() {
        assert_eq!(human_coord(13.361389338970184), "13.36138933897018433");
        assert_eq!(human_coord(2.5), "2.5");
        assert_eq!(human_coord(-0.0), "0");
        assert_eq!(human_coord(10.0), "10");
    }

    #[test]
    fn units_and_errors() {
        assert_eq!(unit(b"KM"), Ok(1000.0));
        assert_eq!(unit(b"mi"), Ok(1609.34));
        assert!(unit(b"yd").is_err());
        assert_eq!(
            lon_lat(b"200", b"10"),
            Err(Reply::err(
                "ERR invalid longitude,latitude pair 200.000000,10.000000"
            ))
        );
        assert_eq!(radius_arg(b"-1", b"m"), Err(Reply::err(RADIUS_NEGATIVE)));
        assert_eq!(radius_arg(b"x", b"m"), Err(Reply::err(NEED_RADIUS)));
    }

    #[test]
    fn search_finds_points_inside_only() {
        let mut z = ZSetValue::new(false);
        for (m, lon, lat) in [
            ("palermo", 13.361389, 38.115556),
            ("catania", 15.087269, 37.502669),
        ] {
            let s = geohash::encode_wgs84(lon, lat).map_or(0, |h| h.align52()) as f64;
            z.insert(m.as_bytes(), s);
        }
        let shape = Shape {
            lon: 15.0,
            lat: 37.0,
            kind: ShapeKind::Radius(100.0),
            conversion: 1000.0,
        };
        let found = points_in_shape(&z, &shape, 0);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].member.as_ref(), b"catania");
        assert_eq!(format!("{:.4}", found[0].dist / 1000.0), "56.4413");
        let wide = Shape {
            kind: ShapeKind::Radius(200.0),
            ..shape
        };
        assert_eq!(points_in_shape(&z, &wide, 0).len(), 2);
        assert_eq!(points_in_shape(&z, &wide, 1).len(), 1);
    }
}
