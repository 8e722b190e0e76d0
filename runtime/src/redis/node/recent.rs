//! Outcomes a node settled in the last few seconds. If Redis loses a
//! DELIVER in a crash (an acknowledged write not yet persisted), the entry
//! reappears in the node's pending list: the node delivers the remembered
//! outcome again instead of running the call a second time.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::shared::Done;

/// Recently settled outcomes, bounded by age, count and body size.
#[derive(Default)]
pub(crate) struct Recent {
    by_entry: HashMap<String, Done>,
    order: VecDeque<(Instant, String)>,
}

impl Recent {
    const MAX_AGE: Duration = Duration::from_secs(10);
    const MAX_COUNT: usize = 100_000;
    const MAX_BODY: usize = 64 << 10;

    pub(super) fn remember(&mut self, d: &Done) {
        if d.body.len() <= Self::MAX_BODY {
            self.by_entry.insert(d.entry.clone(), d.clone());
            self.order.push_back((Instant::now(), d.entry.clone()));
        }
        while let Some((t, e)) = self.order.front() {
            if t.elapsed() > Self::MAX_AGE || self.order.len() > Self::MAX_COUNT {
                self.by_entry.remove(e);
                self.order.pop_front();
            } else {
                break;
            }
        }
    }

    pub(super) fn get(&self, entry: &str) -> Option<&Done> {
        self.by_entry.get(entry)
    }
}
