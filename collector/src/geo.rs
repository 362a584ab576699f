//! The client IP to country, region and city, from a MaxMind-format database (GeoLite2 or
//! GeoIP2, City or Country) named by `--geoip`. Without one, events carry no place.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

pub struct Geo {
    reader: maxminddb::Reader<Vec<u8>>,
}

/// Where an address is, as far as the database knows (empty strings where it does not).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
    /// The first subdivision's ISO code, else its English name.
    pub region: String,
    /// The city's English name.
    pub city: String,
}

#[derive(Deserialize)]
struct Named<'a> {
    #[serde(default)]
    iso_code: Option<&'a str>,
    #[serde(borrow, default)]
    names: BTreeMap<&'a str, &'a str>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    country: Option<Named<'a>>,
    #[serde(borrow, default)]
    subdivisions: Vec<Named<'a>>,
    #[serde(borrow, default)]
    city: Option<Named<'a>>,
}

impl Geo {
    pub fn open(path: &Path) -> Result<Geo, String> {
        let reader = maxminddb::Reader::open_readfile(path)
            .map_err(|e| format!("GeoIP database {}: {e}", path.display()))?;
        Ok(Geo { reader })
    }

    pub fn locate(&self, ip: IpAddr) -> Place {
        let Ok(found) = self.reader.lookup(ip) else {
            return Place::default();
        };
        let Ok(Some(r)) = found.decode::<Record>() else {
            return Place::default();
        };
        let english = |n: &Named| n.names.get("en").copied().unwrap_or_default().to_owned();
        Place {
            country: r
                .country
                .and_then(|c| c.iso_code.map(str::to_owned))
                .unwrap_or_default(),
            region: r
                .subdivisions
                .first()
                .map(|s| s.iso_code.map_or_else(|| english(s), str::to_owned))
                .unwrap_or_default(),
            city: r.city.as_ref().map(english).unwrap_or_default(),
        }
    }
}
