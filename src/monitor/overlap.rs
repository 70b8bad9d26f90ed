//! Which measured jobs ran at the same time: for each open job, the most
//! other jobs that were open at once while it ran.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The jobs open now, each with the most others seen open beside it.
#[derive(Default)]
pub struct Overlaps {
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    /// Job id -> the most other jobs open at once during it so far.
    most_others: HashMap<u64, usize>,
}

impl Overlaps {
    /// A new, empty registry.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Opens a job; every job open now overlaps as many others as it does.
    pub fn enter(self: &Arc<Self>) -> Overlap {
        let mut open = self.open.lock().expect("overlap lock");
        let others = open.most_others.len();
        for most in open.most_others.values_mut() {
            *most = (*most).max(others);
        }
        let id = open.next_id;
        open.next_id += 1;
        open.most_others.insert(id, others);
        Overlap {
            overlaps: self.clone(),
            id,
        }
    }
}

/// One open job; closed when dropped.
pub struct Overlap {
    overlaps: Arc<Overlaps>,
    id: u64,
}

impl Overlap {
    /// The most other jobs that have been open at once since this one opened.
    pub fn most_others(&self) -> usize {
        let open = self.overlaps.open.lock().expect("overlap lock");
        open.most_others.get(&self.id).copied().unwrap_or(0)
    }
}

impl Drop for Overlap {
    fn drop(&mut self) {
        if let Ok(mut open) = self.overlaps.open.lock() {
            open.most_others.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_job_counts_the_most_others_open_beside_it() {
        let overlaps = Overlaps::new();
        let a = overlaps.enter();
        let b = overlaps.enter();
        let c = overlaps.enter();
        assert_eq!(c.most_others(), 2);
        drop(c);
        assert_eq!(b.most_others(), 2);
        drop(b);
        let d = overlaps.enter();
        assert_eq!(d.most_others(), 1);
        drop(d);
        assert_eq!(a.most_others(), 2);
        drop(a);
        assert_eq!(overlaps.enter().most_others(), 0, "closed jobs count no more");
    }
}
