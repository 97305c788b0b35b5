//! Where `dss mobile-send` says the phone is, one position a second:
//! waypoints followed at a speed (`--route`), a GPX file's points replayed
//! one a second (`--gpx`), or a default loop; each loops forever.

use std::path::Path;

/// Mean Earth radius in metres (IUGG), for distances between waypoints;
/// the spherical error (<0.5%) is irrelevant for a simulated phone.
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Largest GPX file read (64 MiB): a day of 1 Hz track points is ~10 MiB.
const MAX_GPX_BYTES: u64 = 64 << 20;

/// The default loop: a ~330 m square (1.3 km around) by the Maracanã stadium in Rio
/// de Janeiro (where the protocol's example positions are).
const DEFAULT_LOOP: [(f64, f64); 4] = [
    (-22.9105, -43.2318),
    (-22.9105, -43.2286),
    (-22.9135, -43.2286),
    (-22.9135, -43.2318),
];

/// A position in degrees, checked to be in range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Latitude, in [-90, 90].
    pub lat: f64,
    /// Longitude, in [-180, 180].
    pub lon: f64,
}

/// A coordinate outside the globe (or not a number).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum OutOfRange {
    /// Not in [-90, 90].
    #[error("latitude {0} is out of range [-90, 90]")]
    Latitude(f64),
    /// Not in [-180, 180].
    #[error("longitude {0} is out of range [-180, 180]")]
    Longitude(f64),
}

impl Point {
    /// A checked point.
    pub fn new(lat: f64, lon: f64) -> Result<Self, OutOfRange> {
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err(OutOfRange::Latitude(lat));
        }
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            return Err(OutOfRange::Longitude(lon));
        }
        Ok(Self { lat, lon })
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance(self, to: Point) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), to.lat.to_radians());
        let dp = p2 - p1;
        let dl = (to.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    /// The point a fraction `f` (0..=1) of the way to `to`, linear in
    /// degrees, crossing the antimeridian the short way.
    fn towards(self, to: Point, f: f64) -> Point {
        let dlon = wrap(to.lon - self.lon);
        Point {
            lat: self.lat + (to.lat - self.lat) * f,
            lon: wrap(self.lon + dlon * f),
        }
    }
}

/// A longitude brought back into [-180, 180].
fn wrap(lon: f64) -> f64 {
    if lon > 180.0 {
        lon - 360.0
    } else if lon < -180.0 {
        lon + 360.0
    } else {
        lon
    }
}

/// Why a route was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    /// A `--route` waypoint is not `LAT,LON` in range.
    #[error("route waypoint {index} {text:?}: {reason}")]
    Waypoint {
        /// 1-based.
        index: usize,
        /// The waypoint as written (cut to 64 characters).
        text: String,
        /// Why.
        reason: String,
    },
    /// No waypoint at all.
    #[error("the route has no waypoints (expected \"LAT,LON;LAT,LON;...\")")]
    Empty,
    /// The speed is not a positive number.
    #[error("speed must be a positive number of m/s, got {0}")]
    Speed(f64),
    /// The GPX file cannot be read.
    #[error("cannot read GPX file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The GPX document is invalid or has no usable point.
    #[error("GPX: {0}")]
    Gpx(String),
}

/// How the phone moves.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Along the closed polygon of `points` at `speed` m/s; `cumulative[i]`
    /// is the distance from the start to `points[i]`, and the last entry
    /// the whole loop's length (back to the start).
    Follow {
        points: Vec<Point>,
        cumulative: Vec<f64>,
        speed: f64,
    },
    /// One point a second, in order.
    Steps(Vec<Point>),
}

/// A route: an endless iterator of one position a second.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    kind: Kind,
    /// The next second [`Iterator::next`] returns.
    second: u64,
}

impl Route {
    /// Follows `points` at `speed` m/s with linear interpolation, from the
    /// last waypoint back to the first and around again. One waypoint (or
    /// all at the same place) is a fixed position.
    pub fn follow(points: Vec<Point>, speed: f64) -> Result<Self, RouteError> {
        if !(speed.is_finite() && speed > 0.0) {
            return Err(RouteError::Speed(speed));
        }
        let (Some(&first), Some(&last)) = (points.first(), points.last()) else {
            return Err(RouteError::Empty);
        };
        let mut cumulative = Vec::with_capacity(points.len() + 1);
        let mut total = 0.0;
        cumulative.push(0.0);
        for pair in points.windows(2) {
            total += pair[0].distance(pair[1]);
            cumulative.push(total);
        }
        cumulative.push(total + last.distance(first));
        Ok(Self {
            kind: Kind::Follow {
                points,
                cumulative,
                speed,
            },
            second: 0,
        })
    }

    /// Replays `points` one a second, in order, then again.
    pub fn steps(points: Vec<Point>) -> Result<Self, RouteError> {
        if points.is_empty() {
            return Err(RouteError::Empty);
        }
        Ok(Self {
            kind: Kind::Steps(points),
            second: 0,
        })
    }

    /// A small loop in Rio de Janeiro followed at `speed` m/s.
    pub fn default_loop(speed: f64) -> Result<Self, RouteError> {
        let points = DEFAULT_LOOP
            .iter()
            .map(|&(lat, lon)| Point { lat, lon })
            .collect();
        Self::follow(points, speed)
    }

    /// Where the phone is `second` seconds after the start.
    pub fn at(&self, second: u64) -> Point {
        match &self.kind {
            Kind::Steps(points) => points[(second % points.len() as u64) as usize],
            Kind::Follow {
                points,
                cumulative,
                speed,
            } => {
                let total = cumulative[cumulative.len() - 1];
                if total <= 0.0 {
                    return points[0];
                }
                let d = (second as f64 * speed) % total;
                // The segment i → i+1 (the last one closes the loop) whose
                // span holds d.
                let i = cumulative
                    .partition_point(|&c| c <= d)
                    .saturating_sub(1)
                    .min(points.len() - 1);
                let from = points[i];
                let to = points[(i + 1) % points.len()];
                let span = cumulative[i + 1] - cumulative[i];
                if span <= 0.0 {
                    return from;
                }
                from.towards(to, (d - cumulative[i]) / span)
            }
        }
    }
}

impl Iterator for Route {
    type Item = Point;

    /// The position of the next second; never `None`.
    fn next(&mut self) -> Option<Point> {
        let p = self.at(self.second);
        self.second += 1;
        Some(p)
    }
}

/// Parses `--route`: `LAT,LON` waypoints separated by `;` (blanks around
/// either separator and empty segments are ignored).
pub fn parse_waypoints(s: &str) -> Result<Vec<Point>, RouteError> {
    let mut points = Vec::new();
    for (i, part) in s.split(';').map(str::trim).enumerate() {
        if part.is_empty() {
            continue;
        }
        let fail = |reason: String| RouteError::Waypoint {
            index: i + 1,
            text: part.chars().take(64).collect(),
            reason,
        };
        let (lat, lon) = part
            .split_once(',')
            .ok_or_else(|| fail("expected LAT,LON".into()))?;
        let num = |what: &str, v: &str| {
            v.trim()
                .parse::<f64>()
                .map_err(|_| fail(format!("{what} {:?} is not a number", v.trim())))
        };
        let p = Point::new(num("latitude", lat)?, num("longitude", lon)?)
            .map_err(|e| fail(e.to_string()))?;
        points.push(p);
    }
    if points.is_empty() {
        return Err(RouteError::Empty);
    }
    Ok(points)
}

/// The `trkpt`, `rtept` and `wpt` points of a GPX document, in document
/// order.
pub fn parse_gpx(xml: &str) -> Result<Vec<Point>, RouteError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut points = Vec::new();
    loop {
        let event = reader.read_event().map_err(|e| {
            RouteError::Gpx(format!(
                "invalid XML at byte {}: {e}",
                reader.error_position()
            ))
        })?;
        let e = match event {
            Event::Start(e) | Event::Empty(e) => e,
            Event::Eof => break,
            _ => continue,
        };
        let name = e.local_name();
        let name = match name.as_ref() {
            "trkpt" => "trkpt",
            "rtept" => "rtept",
            "wpt" => "wpt",
            _ => continue,
        };
        let at = reader.buffer_position();
        let fail = |reason: String| RouteError::Gpx(format!("<{name}> before byte {at}: {reason}"));
        let (mut lat, mut lon) = (None, None);
        for attr in e.attributes() {
            let attr = attr.map_err(|e| fail(e.to_string()))?;
            let slot = match attr.key.local_name().as_ref() {
                "lat" => &mut lat,
                "lon" => &mut lon,
                _ => continue,
            };
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| fail(e.to_string()))?;
            let v = value.trim();
            let v = v
                .parse::<f64>()
                .map_err(|_| fail(format!("{v:?} is not a number")))?;
            *slot = Some(v);
        }
        let (Some(lat), Some(lon)) = (lat, lon) else {
            return Err(fail("needs both lat and lon attributes".into()));
        };
        points.push(Point::new(lat, lon).map_err(|e| fail(e.to_string()))?);
    }
    if points.is_empty() {
        return Err(RouteError::Gpx(
            "no trkpt, rtept or wpt element in the document".into(),
        ));
    }
    Ok(points)
}

/// Reads and parses a GPX file.
pub fn read_gpx(path: &Path) -> Result<Vec<Point>, RouteError> {
    use std::io::Read;
    let fail = |reason: String| RouteError::Read {
        path: path.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_GPX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_GPX_BYTES {
        return Err(fail(format!("larger than {} MiB", MAX_GPX_BYTES >> 20)));
    }
    parse_gpx(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Point, b: Point) -> bool {
        (a.lat - b.lat).abs() < 1e-9 && (a.lon - b.lon).abs() < 1e-9
    }

    #[test]
    fn waypoints_are_parsed_and_checked() {
        let p = parse_waypoints(" -22.86, -43.23 ;10,20; ").unwrap();
        assert_eq!(
            p,
            [
                Point {
                    lat: -22.86,
                    lon: -43.23
                },
                Point {
                    lat: 10.0,
                    lon: 20.0
                }
            ]
        );
        assert_eq!(parse_waypoints(" ; "), Err(RouteError::Empty));
        for (s, want) in [
            ("1,2;3", "route waypoint 2 \"3\": expected LAT,LON"),
            (
                "x,2",
                "route waypoint 1 \"x,2\": latitude \"x\" is not a number",
            ),
            (
                "1,",
                "route waypoint 1 \"1,\": longitude \"\" is not a number",
            ),
            (
                "90.1,0",
                "route waypoint 1 \"90.1,0\": latitude 90.1 is out of range [-90, 90]",
            ),
            (
                "0,-181",
                "route waypoint 1 \"0,-181\": longitude -181 is out of range [-180, 180]",
            ),
            (
                "NaN,0",
                "route waypoint 1 \"NaN,0\": latitude NaN is out of range [-90, 90]",
            ),
            (
                "0,inf",
                "route waypoint 1 \"0,inf\": longitude inf is out of range [-180, 180]",
            ),
        ] {
            assert_eq!(parse_waypoints(s).unwrap_err().to_string(), want, "{s}");
        }
    }

    #[test]
    fn a_route_is_followed_at_its_speed_and_loops() {
        // Two points 1000 m apart along a meridian; at 100 m/s the phone
        // goes there in 10 s and back in 10 s.
        let a = Point { lat: 0.0, lon: 0.0 };
        let dlat = (1000.0 / EARTH_RADIUS_M).to_degrees();
        let b = Point {
            lat: dlat,
            lon: 0.0,
        };
        assert!((a.distance(b) - 1000.0).abs() < 1e-6);
        let r = Route::follow(vec![a, b], 100.0).unwrap();
        assert!(close(r.at(0), a));
        assert!(close(
            r.at(5),
            Point {
                lat: dlat / 2.0,
                lon: 0.0
            }
        ));
        assert!(close(r.at(10), b));
        assert!(close(
            r.at(15),
            Point {
                lat: dlat / 2.0,
                lon: 0.0
            }
        ));
        assert!(close(r.at(20), a));
        assert!(close(r.at(23), r.at(3)));
        // Consecutive seconds are one speed apart.
        let pts: Vec<Point> = r.clone().take(9).collect();
        for w in pts.windows(2) {
            assert!((w[0].distance(w[1]) - 100.0).abs() < 0.01);
        }
        // Three points: a triangle, closed back to the start.
        let c = Point {
            lat: dlat,
            lon: 0.01,
        };
        let r = Route::follow(vec![a, b, c], 100.0).unwrap();
        let loop_len = a.distance(b) + b.distance(c) + c.distance(a);
        let p = r.at(1000);
        assert!(p.lat >= 0.0 && p.lat <= dlat && p.lon >= 0.0 && p.lon <= 0.01);
        assert!(close(r.at(0), a));
        let n = (loop_len / 100.0).round() as u64;
        assert!(r.at(n).distance(a) < 100.0);
    }

    #[test]
    fn one_waypoint_is_a_fixed_position() {
        let p = Point::new(-22.86, -43.23).unwrap();
        let r = Route::follow(vec![p], 15.0).unwrap();
        assert!(r.take(5).all(|q| q == p));
        let r = Route::follow(vec![p, p], 15.0).unwrap();
        assert_eq!(r.at(7), p);
    }

    #[test]
    fn routes_cross_the_antimeridian_the_short_way() {
        let a = Point::new(0.0, 179.9).unwrap();
        let b = Point::new(0.0, -179.9).unwrap();
        let r = Route::follow(vec![a, b], a.distance(b) / 2.0).unwrap();
        let mid = r.at(1);
        assert!(mid.lon.abs() > 179.99, "{mid:?}");
        assert!(r.take(10).all(|p| p.lon.abs() >= 179.9));
    }

    #[test]
    fn bad_routes_are_refused() {
        let p = Point::new(0.0, 0.0).unwrap();
        assert_eq!(Route::follow(vec![], 15.0), Err(RouteError::Empty));
        assert_eq!(Route::steps(vec![]), Err(RouteError::Empty));
        assert_eq!(Route::follow(vec![p], 0.0), Err(RouteError::Speed(0.0)));
        assert!(Route::follow(vec![p], f64::NAN).is_err());
        assert!(Route::follow(vec![p], -1.0).is_err());
    }

    #[test]
    fn the_default_loop_moves_and_stays_near_rio() {
        let r = Route::default_loop(15.0).unwrap();
        let pts: Vec<Point> = r.take(200).collect();
        let first = pts[0];
        assert!(pts.iter().all(|p| p.distance(first) < 1000.0));
        assert!(pts.windows(2).all(|w| w[0].distance(w[1]) <= 15.01));
        assert!(pts[1] != first);
    }

    const GPX: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">
  <wpt lat="-22.9" lon="-43.2"><name>start &amp; end</name></wpt>
  <rte><rtept lat="-22.91" lon="-43.21"/></rte>
  <trk><name>t</name><trkseg>
    <trkpt lat=" -22.92 " lon="-43.22"><ele>10</ele><time>2024-01-01T00:00:00Z</time></trkpt>
    <trkpt lon="-43.23" lat="-22.93"/>
  </trkseg></trk>
</gpx>"#;

    #[test]
    fn gpx_points_are_read_in_order_and_replayed() {
        let pts = parse_gpx(GPX).unwrap();
        let want = [
            (-22.9, -43.2),
            (-22.91, -43.21),
            (-22.92, -43.22),
            (-22.93, -43.23),
        ];
        assert_eq!(pts, want.map(|(lat, lon)| Point { lat, lon }).to_vec());
        let r = Route::steps(pts.clone()).unwrap();
        let replay: Vec<Point> = r.take(6).collect();
        assert_eq!(replay[..4], pts[..]);
        assert_eq!(replay[4], pts[0]);
        // Namespace prefixes are fine.
        let prefixed = r#"<g:gpx xmlns:g="http://www.topografix.com/GPX/1/1"><g:trkpt lat="1" lon="2"/></g:gpx>"#;
        assert_eq!(parse_gpx(prefixed).unwrap(), [Point { lat: 1.0, lon: 2.0 }]);
    }

    #[test]
    fn bad_gpx_is_refused_clearly() {
        for (doc, want) in [
            ("<gpx></gpx>", "no trkpt, rtept or wpt element"),
            ("<gpx><trkpt lat=\"1\"/></gpx>", "needs both lat and lon"),
            (
                "<gpx><trkpt lat=\"1\" lon=\"east\"/></gpx>",
                "\"east\" is not a number",
            ),
            (
                "<gpx><wpt lat=\"91\" lon=\"0\"/></gpx>",
                "latitude 91 is out of range",
            ),
            ("<gpx><trkpt lat=\"1\" lon=\"2\"></gpx>", "invalid XML"),
            ("<gpx><trkpt lat=\"1\" lat=\"2\"/></gpx>", "<trkpt>"),
        ] {
            let e = parse_gpx(doc).unwrap_err().to_string();
            assert!(e.contains(want), "{doc}: {e}");
        }
        let e = read_gpx(Path::new("/nonexistent/route.gpx")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read GPX file /nonexistent/route.gpx"),
            "{e}"
        );
    }
}
