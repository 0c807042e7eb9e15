//! Types that HTTP and UDP share: peer ids, announce events, scrape counts and the `numwant` caps.

/// The most peers a tracker hands out in one announce response; a larger `numwant` is clamped to it when
/// parsed. 200 is libtorrent's default request and what opentracker and most trackers cap at.
pub const MAX_NUMWANT: u32 = 200;

/// Peers to hand out when the request does not say (`numwant` absent, or -1 over UDP).
pub const DEFAULT_NUMWANT: u32 = 50;

pub use metainfo::PeerId;

/// Why a peer announces (BEP 3 `event`; BEP 15 numbers it; BEP 21 adds `paused`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Event {
    /// A regular announce (no `event`, `event=` or `event=empty`; UDP 0).
    #[default]
    None,
    /// The download completed (`completed`; UDP 1).
    Completed,
    /// The download began (`started`; UDP 2).
    Started,
    /// The peer is leaving the swarm (`stopped`; UDP 3).
    Stopped,
    /// BEP 21: a partial seed that stays in the swarm but will download nothing more (`paused`; UDP 4, as
    /// libtorrent sends it).
    Paused,
}

impl Event {
    /// All events, for tests and tables.
    pub const ALL: [Event; 5] = [
        Event::None,
        Event::Completed,
        Event::Started,
        Event::Stopped,
        Event::Paused,
    ];

    /// The value of the HTTP `event` parameter (empty for [`Event::None`], which is sent by leaving it out).
    pub fn as_http_str(self) -> &'static str {
        match self {
            Event::None => "",
            Event::Completed => "completed",
            Event::Started => "started",
            Event::Stopped => "stopped",
            Event::Paused => "paused",
        }
    }

    /// Read an HTTP `event` value (already percent-decoded); `""` and `"empty"` are [`Event::None`].
    pub fn from_http(value: &[u8]) -> Option<Event> {
        match value {
            b"" | b"empty" => Some(Event::None),
            b"completed" => Some(Event::Completed),
            b"started" => Some(Event::Started),
            b"stopped" => Some(Event::Stopped),
            b"paused" => Some(Event::Paused),
            _ => None,
        }
    }

    /// The BEP 15 number.
    pub fn to_udp(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
            Event::Paused => 4,
        }
    }

    /// Read a BEP 15 event number.
    pub fn from_udp(n: u32) -> Option<Event> {
        match n {
            0 => Some(Event::None),
            1 => Some(Event::Completed),
            2 => Some(Event::Started),
            3 => Some(Event::Stopped),
            4 => Some(Event::Paused),
            _ => None,
        }
    }
}

/// What a scrape reports about one swarm (BEP 48; BEP 15 calls them seeders, completed, leechers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ScrapeStats {
    /// Peers with the whole torrent (seeders).
    pub complete: u32,
    /// Peers that ever completed the download.
    pub downloaded: u32,
    /// Peers still downloading (leechers).
    pub incomplete: u32,
}

/// Clamp a requested peer count to [`MAX_NUMWANT`].
pub(crate) fn clamp_numwant(n: u64) -> u32 {
    u32::try_from(n.min(u64::from(MAX_NUMWANT))).unwrap_or(MAX_NUMWANT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_map_both_ways() {
        for e in Event::ALL {
            assert_eq!(Event::from_udp(e.to_udp()), Some(e));
            assert_eq!(Event::from_http(e.as_http_str().as_bytes()), Some(e));
        }
        assert_eq!(Event::from_http(b"empty"), Some(Event::None));
        assert_eq!(Event::from_http(b"Started"), None);
        assert_eq!(Event::from_udp(5), None);
    }

    #[test]
    fn peer_id_shows_as_text() {
        let mut id = *b"-TR3000-u0swcvvz6h3r";
        assert_eq!(format!("{:?}", PeerId(id)), "PeerId(\"-TR3000-u0swcvvz6h3r\")");
        assert_eq!(PeerId(id).azureus_prefix(), Some("-TR3000-"));
        id[19] = 0xee;
        assert_eq!(PeerId(id).to_string(), "-TR3000-u0swcvvz6h3\\xee");
        assert_eq!(PeerId(*b"A2-1-36-0-wxxxxxxxxx").azureus_prefix(), None);
    }

    #[test]
    fn numwant_is_clamped() {
        assert_eq!(clamp_numwant(0), 0);
        assert_eq!(clamp_numwant(80), 80);
        assert_eq!(clamp_numwant(u64::MAX), MAX_NUMWANT);
    }
}
