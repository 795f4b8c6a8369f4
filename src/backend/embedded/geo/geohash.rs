//! Redis's geohash arithmetic (geohash.c / geohash_helper.c semantics): 52-bit interleaved
//! hashes over the Web-Mercator latitude limits, the 9-box neighbourhood a radius or box
//! search scans, and the haversine distances. Every float operation follows the same order
//! as Redis so that scores, decoded coordinates, distances and candidate sets match bit for
//! bit.

/// Bits of precision per coordinate (26 + 26 = the 52 bits a double holds exactly).
pub const STEP_MAX: u8 = 26;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
pub const EARTH_RADIUS_M: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

fn deg_rad(a: f64) -> f64 {
    a * D_R
}

fn rad_deg(a: f64) -> f64 {
    a / D_R
}

/// A hash of `step` bits per coordinate: latitude on even bits, longitude on odd bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashBits {
    pub bits: u64,
    pub step: u8,
}

impl HashBits {
    /// The "excluded box" marker (Redis's GZERO / HASHISZERO).
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The hash as a 52-bit sorted-set score prefix.
    pub fn align52(&self) -> u64 {
        self.bits
            .checked_shl(52u32.saturating_sub(self.step as u32 * 2))
            .unwrap_or(0)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Area {
    pub longitude: Range,
    pub latitude: Range,
}

/// The coordinate ranges stored scores are encoded over.
pub const MERCATOR_LONG: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
pub const MERCATOR_LAT: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// Spreads the 32 bits of `v` onto the even bits of a u64.
fn spread(v: u32) -> u64 {
    let mut x = v as u64;
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    x = (x | (x << 1)) & 0x5555_5555_5555_5555;
    x
}

/// Gathers the even bits of `v` (the inverse of [`spread`]).
fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// geohashEncode: None outside the Mercator limits or the given ranges.
pub fn encode(long_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<HashBits> {
    if step == 0 || step > 32 || lat_r.max == lat_r.min || long_r.max == long_r.min {
        return None;
    }
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < long_r.min || lon > long_r.max {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (lat - lat_r.min) / (lat_r.max - lat_r.min) * scale;
    let long_offset = (lon - long_r.min) / (long_r.max - long_r.min) * scale;
    Some(HashBits {
        bits: spread(lat_offset as u32) | (spread(long_offset as u32) << 1),
        step,
    })
}

/// Encodes a point at full precision over the Mercator ranges.
pub fn encode_wgs84(lon: f64, lat: f64) -> Option<HashBits> {
    encode(MERCATOR_LONG, MERCATOR_LAT, lon, lat, STEP_MAX)
}

/// geohashDecode: the cell a hash stands for.
pub fn decode(long_r: Range, lat_r: Range, h: HashBits) -> Area {
    let ilato = squash(h.bits) as f64;
    let ilono = squash(h.bits >> 1) as f64;
    let div = (1u64 << h.step.min(63)) as f64;
    let lat_scale = lat_r.max - lat_r.min;
    let long_scale = long_r.max - long_r.min;
    Area {
        latitude: Range {
            min: lat_r.min + (ilato / div) * lat_scale,
            max: lat_r.min + ((ilato + 1.0) / div) * lat_scale,
        },
        longitude: Range {
            min: long_r.min + (ilono / div) * long_scale,
            max: long_r.min + ((ilono + 1.0) / div) * long_scale,
        },
    }
}

/// The centre of a cell, clamped to the Mercator limits: [longitude, latitude].
pub fn area_center(a: &Area) -> [f64; 2] {
    let lon = ((a.longitude.min + a.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.latitude.min + a.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    [lon, lat]
}

/// The [longitude, latitude] a stored score stands for (decodeGeohash).
pub fn decode_score(score: f64) -> [f64; 2] {
    let h = HashBits {
        bits: c_double_to_u64(score),
        step: STEP_MAX,
    };
    area_center(&decode(MERCATOR_LONG, MERCATOR_LAT, h))
}

/// C's `(uint64_t)` cast of a double as Redis's x86-64 build computes it (GEOPOS/GEOHASH of
/// a score that is no geohash, e.g. one set by ZADD): below 2^63 a signed conversion, so
/// negatives wrap; from 2^63 a signed conversion of `x - 2^63` with the top bit flipped.
/// A conversion out of range (infinities, 2^64 and up) gives x86's "integer indefinite"
/// 0x8000_0000_0000_0000, where Rust's `as` would saturate.
fn c_double_to_u64(x: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    let signed = |v: f64| {
        if (-TWO_63..TWO_63).contains(&v) {
            v as i64
        } else {
            i64::MIN
        }
    };
    if x < TWO_63 {
        signed(x) as u64
    } else {
        (signed(x - TWO_63) as u64) ^ (1 << 63)
    }
}

/// The 11-character base32 geohash GEOHASH returns (standard ±90 latitude range).
pub fn geohash_string(score: f64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let [lon, lat] = decode_score(score);
    let bits = encode(
        Range {
            min: -180.0,
            max: 180.0,
        },
        Range {
            min: -90.0,
            max: 90.0,
        },
        lon,
        lat,
        STEP_MAX,
    )
    .map_or(0, |h| h.bits);
    (0..11)
        .map(|i| {
            // 52 bits give 10 full characters; Redis pads the 11th with zero bits.
            let idx = if i == 10 {
                0
            } else {
                ((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize
            };
            ALPHABET[idx] as char
        })
        .collect()
}

fn move_x(h: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - h.step as u32 * 2;
    let mut x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64.checked_shr(shift).unwrap_or(0);
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x |= zz;
        x = x.wrapping_sub(zz + 1);
    }
    x &= 0xaaaa_aaaa_aaaa_aaaau64.checked_shr(shift).unwrap_or(0);
    h.bits = x | y;
}

fn move_y(h: &mut HashBits, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - h.step as u32 * 2;
    let x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let mut y = h.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64.checked_shr(shift).unwrap_or(0);
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y |= zz;
        y = y.wrapping_sub(zz + 1);
    }
    y &= 0x5555_5555_5555_5555u64.checked_shr(shift).unwrap_or(0);
    h.bits = x | y;
}

fn moved(h: HashBits, dx: i8, dy: i8) -> HashBits {
    let mut n = h;
    move_x(&mut n, dx);
    move_y(&mut n, dy);
    n
}

/// What a search shape is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ShapeKind {
    Radius(f64),
    Box { width: f64, height: f64 },
}

/// A search: centre, extent in the request's unit, and that unit's metres (`conversion`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub lon: f64,
    pub lat: f64,
    pub kind: ShapeKind,
    pub conversion: f64,
}

impl Shape {
    /// [min_lon, min_lat, max_lon, max_lat] of the area the shape can reach.
    fn bounding_box(&self) -> [f64; 4] {
        let (h, w) = match self.kind {
            ShapeKind::Radius(r) => (r, r),
            ShapeKind::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let height = self.conversion * h;
        let width = self.conversion * w;
        let lat_delta = rad_deg(height / EARTH_RADIUS_M);
        let long_delta_top = rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat + lat_delta).cos());
        let long_delta_bottom =
            rad_deg(width / EARTH_RADIUS_M / deg_rad(self.lat - lat_delta).cos());
        let delta = if self.lat < 0.0 {
            long_delta_bottom
        } else {
            long_delta_top
        };
        [
            self.lon - delta,
            self.lat - lat_delta,
            self.lon + delta,
            self.lat + lat_delta,
        ]
    }

    /// The distance in metres from the centre if the point is inside the shape.
    pub fn distance_if_inside(&self, lon: f64, lat: f64) -> Option<f64> {
        match self.kind {
            ShapeKind::Radius(r) => {
                let d = distance(self.lon, self.lat, lon, lat);
                (d <= r * self.conversion).then_some(d)
            }
            ShapeKind::Box { width, height } => {
                let (width_m, height_m) = (width * self.conversion, height * self.conversion);
                if lat_distance(lat, self.lat) > height_m / 2.0 {
                    return None;
                }
                if distance(lon, lat, self.lon, lat) > width_m / 2.0 {
                    return None;
                }
                Some(distance(self.lon, self.lat, lon, lat))
            }
        }
    }
}

/// geohashEstimateStepsByRadius.
fn estimate_steps(range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return STEP_MAX;
    }
    let mut range_m = range_m;
    let mut step: i32 = 1;
    while range_m < MERCATOR_MAX {
        range_m *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, STEP_MAX as i32) as u8
}

/// The boxes a search scans, in Redis's order (centre, N, S, E, W, NE, NW, SE, SW), with
/// useless neighbours zeroed and consecutive duplicates (huge radii) dropped.
pub fn search_boxes(shape: &Shape) -> Vec<HashBits> {
    let [min_lon, min_lat, max_lon, max_lat] = shape.bounding_box();
    let radius_m = match shape.kind {
        ShapeKind::Radius(r) => r,
        ShapeKind::Box { width, height } => {
            ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
        }
    } * shape.conversion;
    let mut steps = estimate_steps(radius_m, shape.lat);
    let at = |steps: u8| {
        let hash = encode(MERCATOR_LONG, MERCATOR_LAT, shape.lon, shape.lat, steps)
            .unwrap_or(HashBits { bits: 0, step: 0 });
        (hash, decode(MERCATOR_LONG, MERCATOR_LAT, hash))
    };
    let (mut hash, mut area) = at(steps);
    let cell = |h: HashBits| decode(MERCATOR_LONG, MERCATOR_LAT, h);
    let decrease = cell(moved(hash, 0, 1)).latitude.max < max_lat
        || cell(moved(hash, 0, -1)).latitude.min > min_lat
        || cell(moved(hash, 1, 0)).longitude.max < max_lon
        || cell(moved(hash, -1, 0)).longitude.min > min_lon;
    if steps > 1 && decrease {
        steps -= 1;
        (hash, area) = at(steps);
    }
    // (dx, dy) of each box in scan order.
    const ORDER: [(i8, i8); 9] = [
        (0, 0),
        (0, 1),
        (0, -1),
        (1, 0),
        (-1, 0),
        (1, 1),
        (-1, 1),
        (1, -1),
        (-1, -1),
    ];
    let zero = HashBits::default();
    let mut boxes: Vec<HashBits> = ORDER.iter().map(|&(dx, dy)| moved(hash, dx, dy)).collect();
    if steps >= 2 {
        for (i, &(dx, dy)) in ORDER.iter().enumerate().skip(1) {
            let useless = (dy < 0 && area.latitude.min < min_lat)
                || (dy > 0 && area.latitude.max > max_lat)
                || (dx < 0 && area.longitude.min < min_lon)
                || (dx > 0 && area.longitude.max > max_lon);
            if useless {
                boxes[i] = zero;
            }
        }
    }
    let mut out = Vec::with_capacity(9);
    let mut last: Option<usize> = None;
    for (i, b) in boxes.iter().enumerate() {
        if b.is_zero() {
            continue;
        }
        // Redis's `last_processed` starts at 0 and tests as false there, so a repeat of the
        // centre box is never skipped.
        if let Some(l) = last.filter(|&l| l != 0)
            && boxes[l] == *b
        {
            continue;
        }
        out.push(*b);
        last = Some(i);
    }
    out
}

/// The score interval `[min, max)` holding every point of a box.
pub fn box_score_range(h: HashBits) -> (f64, f64) {
    let min = h.align52();
    let max = HashBits {
        bits: h.bits.wrapping_add(1),
        step: h.step,
    }
    .align52();
    (min as f64, max as f64)
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Haversine distance in metres (geohashGetDistance).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score_of(lon: f64, lat: f64) -> f64 {
        encode_wgs84(lon, lat)
            .map(|h| h.align52() as f64)
            .unwrap_or(-1.0)
    }

    #[test]
    fn encodes_like_redis() {
        // Values from a real redis-server: GEOADD g 13.361389 38.115556 Palermo; ZSCORE.
        assert_eq!(score_of(13.361389, 38.115556), 3479099956230698.0);
        assert_eq!(score_of(15.087269, 37.502669), 3479447370796909.0);
        assert_eq!(encode_wgs84(181.0, 0.0), None);
        assert_eq!(encode_wgs84(0.0, 85.06), None);
    }

    #[test]
    fn decodes_to_cell_centre() {
        let [lon, lat] = decode_score(3479099956230698.0);
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
    }

    #[test]
    fn geohash_strings() {
        assert_eq!(geohash_string(3479099956230698.0), "sqc8b49rny0");
        assert_eq!(geohash_string(3479447370796909.0), "sqdtr74hyu0");
    }

    #[test]
    fn distances() {
        let [a, b] = decode_score(3479099956230698.0);
        let [c, d] = decode_score(3479447370796909.0);
        assert_eq!(format!("{:.4}", distance(a, b, c, d)), "166274.1516");
        assert_eq!(distance(a, b, a, b), 0.0);
    }

    #[test]
    fn spread_squash_round_trip() {
        for v in [0u32, 1, 0x3ff_ffff, 0xdead_beef, u32::MAX] {
            assert_eq!(squash(spread(v)), v);
        }
    }

    #[test]
    fn neighbours_move_one_cell() {
        let h = encode_wgs84(10.0, 10.0).unwrap_or_default();
        let east = moved(h, 1, 0);
        let back = moved(east, -1, 0);
        assert_eq!(back, h);
        let a = decode(MERCATOR_LONG, MERCATOR_LAT, h);
        let e = decode(MERCATOR_LONG, MERCATOR_LAT, east);
        assert_eq!(a.longitude.max, e.longitude.min);
        let n = decode(MERCATOR_LONG, MERCATOR_LAT, moved(h, 0, 1));
        assert_eq!(a.latitude.max, n.latitude.min);
    }

    #[test]
    fn search_boxes_cover_the_centre() {
        let shape = Shape {
            lon: 15.0,
            lat: 37.0,
            kind: ShapeKind::Radius(200.0),
            conversion: 1000.0,
        };
        let boxes = search_boxes(&shape);
        assert!(!boxes.is_empty() && boxes.len() <= 9);
        let s = score_of(15.0, 37.0);
        let (min, max) = box_score_range(boxes[0]);
        assert!(min <= s && s < max);
    }

    #[test]
    fn matches_x86_64_c_conversion() {
        assert_eq!(super::c_double_to_u64(1.0), 1);
        assert_eq!(super::c_double_to_u64(-3.75), (-3i64) as u64);
        assert_eq!(super::c_double_to_u64(f64::INFINITY), 0);
        assert_eq!(super::c_double_to_u64(f64::NEG_INFINITY), 1 << 63);
        assert_eq!(super::c_double_to_u64(9_223_372_036_854_775_808.0), 1 << 63);
        assert_eq!(super::c_double_to_u64(1e30), 0);
    }
}
