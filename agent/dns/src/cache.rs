//! The forwarder's response cache: keyed by (name, type, class), entries live for the smallest TTL of the answer
//! (capped), negative answers for the SOA minimum (capped, RFC 2308), and the least recently used entry is evicted
//! when the cache is full. Time is passed in, so expiry is testable without sleeping.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, RecordType};

/// Longest time a positive answer is kept, whatever its TTL.
pub const MAX_TTL: u32 = 3600;
/// Longest time a negative answer (NXDOMAIN, NODATA) is kept.
pub const MAX_NEGATIVE_TTL: u32 = 30;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey {
    name: String,
    rtype: RecordType,
    class: DNSClass,
}

impl CacheKey {
    pub fn of(query: &Query) -> CacheKey {
        CacheKey { name: query.name.to_ascii().to_ascii_lowercase(), rtype: query.query_type, class: query.query_class }
    }
}

struct Entry {
    response: Message,
    stored: Instant,
    ttl: u32,
    used: u64,
}

pub(crate) struct Cache {
    capacity: usize,
    entries: HashMap<CacheKey, Entry>,
    /// Use tick → key; the first entry is the least recently used.
    recency: BTreeMap<u64, CacheKey>,
    tick: u64,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache { capacity, entries: HashMap::new(), recency: BTreeMap::new(), tick: 0 }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The cached response with its TTLs lowered by the time spent in the cache.
    pub fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Message> {
        let entry = self.entries.get_mut(key)?;
        let age = now.saturating_duration_since(entry.stored);
        if age >= Duration::from_secs(u64::from(entry.ttl)) {
            let used = entry.used;
            self.entries.remove(key);
            self.recency.remove(&used);
            return None;
        }
        self.tick += 1;
        self.recency.remove(&entry.used);
        entry.used = self.tick;
        self.recency.insert(self.tick, key.clone());
        let elapsed = u32::try_from(age.as_secs()).unwrap_or(u32::MAX);
        let mut response = entry.response.clone();
        for record in response.answers.iter_mut().chain(&mut response.authorities).chain(&mut response.additionals) {
            record.decrement_ttl(elapsed);
        }
        Some(response)
    }

    /// Stores `response` if it may be cached (see [`cache_ttl`]).
    pub fn insert(&mut self, key: CacheKey, response: &Message, now: Instant) {
        if self.capacity == 0 {
            return;
        }
        let Some(ttl) = cache_ttl(response) else {
            return;
        };
        if let Some(old) = self.entries.remove(&key) {
            self.recency.remove(&old.used);
        }
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.tick += 1;
        let mut stored = response.clone();
        stored.edns = None;
        self.recency.insert(self.tick, key.clone());
        self.entries.insert(key, Entry { response: stored, stored: now, ttl, used: self.tick });
    }
}

/// How long a response may be cached, `None` for never: errors, truncated answers, TTL 0, and negative answers
/// without an SOA to bound them.
pub(crate) fn cache_ttl(response: &Message) -> Option<u32> {
    if response.metadata.truncation {
        return None;
    }
    let ttl = match response.metadata.response_code {
        ResponseCode::NoError if !response.answers.is_empty() => {
            response.answers.iter().map(|r| r.ttl).min()?.min(MAX_TTL)
        }
        ResponseCode::NoError | ResponseCode::NXDomain => {
            let soa = response.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.minimum.min(r.ttl)),
                _ => None,
            })?;
            soa.min(MAX_NEGATIVE_TTL)
        }
        _ => return None,
    };
    (ttl > 0).then_some(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, Record};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(ttl: u32) -> Record {
        Record::from_rdata(name("example.com."), ttl, RData::A(A::new(192, 0, 2, 1)))
    }

    fn soa(record_ttl: u32, minimum: u32) -> Record {
        let rdata = SOA::new(name("ns.example.com."), name("host.example.com."), 1, 1, 1, 1, minimum);
        Record::from_rdata(name("example.com."), record_ttl, RData::SOA(rdata))
    }

    fn response(code: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Message {
        let mut m = Message::response(1, hickory_proto::op::OpCode::Query);
        m.metadata.response_code = code;
        m.answers = answers;
        m.authorities = authorities;
        m
    }

    #[test]
    fn ttl_rules() {
        let mut truncated = response(ResponseCode::NoError, vec![a(60)], vec![]);
        truncated.metadata.truncation = true;
        let cases: Vec<(&str, Message, Option<u32>)> = vec![
            ("minimum of answers", response(ResponseCode::NoError, vec![a(300), a(60)], vec![]), Some(60)),
            ("capped at an hour", response(ResponseCode::NoError, vec![a(86400)], vec![]), Some(MAX_TTL)),
            ("ttl 0 not cached", response(ResponseCode::NoError, vec![a(0)], vec![]), None),
            ("nxdomain by soa minimum", response(ResponseCode::NXDomain, vec![], vec![soa(900, 10)]), Some(10)),
            ("nodata by soa ttl", response(ResponseCode::NoError, vec![], vec![soa(7, 900)]), Some(7)),
            ("negative capped", response(ResponseCode::NXDomain, vec![], vec![soa(900, 900)]), Some(30)),
            ("negative without soa", response(ResponseCode::NXDomain, vec![], vec![]), None),
            ("servfail", response(ResponseCode::ServFail, vec![], vec![soa(900, 900)]), None),
            ("refused", response(ResponseCode::Refused, vec![], vec![]), None),
            ("truncated", truncated, None),
        ];
        for (what, message, want) in cases {
            assert_eq!(cache_ttl(&message), want, "{what}");
        }
    }

    fn key(s: &str) -> CacheKey {
        CacheKey::of(&Query::query(name(s), RecordType::A))
    }

    #[test]
    fn entries_expire_and_age_their_ttls() {
        let mut cache = Cache::new(10);
        let t0 = Instant::now();
        cache.insert(key("example.com."), &response(ResponseCode::NoError, vec![a(10)], vec![]), t0);
        let hit = cache.get(&key("EXAMPLE.com."), t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(hit.answers[0].ttl, 6, "case-insensitive key, TTL aged");
        assert!(cache.get(&key("example.com."), t0 + Duration::from_secs(10)).is_none());
        assert_eq!(cache.len(), 0, "expired entry dropped");
    }

    #[test]
    fn least_recently_used_is_evicted() {
        let mut cache = Cache::new(2);
        let t0 = Instant::now();
        let ok = response(ResponseCode::NoError, vec![a(60)], vec![]);
        cache.insert(key("a."), &ok, t0);
        cache.insert(key("b."), &ok, t0);
        assert!(cache.get(&key("a."), t0).is_some(), "a becomes most recent");
        cache.insert(key("c."), &ok, t0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&key("b."), t0).is_none(), "b was least recently used");
        assert!(cache.get(&key("a."), t0).is_some());
        assert!(cache.get(&key("c."), t0).is_some());
        cache.insert(key("c."), &ok, t0);
        assert_eq!(cache.len(), 2, "replacing does not grow");
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut cache = Cache::new(0);
        let now = Instant::now();
        cache.insert(key("a."), &response(ResponseCode::NoError, vec![a(60)], vec![]), now);
        assert!(cache.get(&key("a."), now).is_none());
    }
}
