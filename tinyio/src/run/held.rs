//! The held leaf: the second leaf path, for speed. A coroutine that yields one fresh leaf, which
//! nobody else holds, keeps it in its own entry instead of the table: an entry and a round
//! through the ready queue fewer for the commonest wait (a sleep, an event, a thread call). The
//! leaf wakes the holder's token, and is polled when the holder is next stepped, which then
//! resumes the holder at once if the leaf is done. Nothing else in the run sees a held leaf:
//! whatever else may happen to it (its holder is stopped, its run fails, it fails) first
//! `settle`s it in the table, as the one child its holder waits on.

use super::*;

/// What a coroutine waits on.
pub(super) enum Waits<'s> {
    /// Coroutines of the table, by token (a child may finish and its slot be reused meanwhile).
    Children(Keys<u64>),
    /// The one leaf it waits on, held in its entry (see [`Run::hold`]).
    Held(Rc<dyn Task + 's>),
}

impl Waits<'_> {
    pub(super) const NOTHING: Self = Waits::Children(Keys::None);

    pub(super) fn children(&self) -> &[u64] {
        match self {
            Waits::Children(keys) => keys.as_slice(),
            Waits::Held(_) => &[],
        }
    }

    /// The children, of a coroutine whose held leaf, if any, has been settled.
    pub(super) fn into_children(self) -> Keys<u64> {
        match self {
            Waits::Children(keys) => keys,
            Waits::Held(_) => unreachable!("a held leaf is settled first"),
        }
    }
}

impl<'s> Run<'s> {
    /// `token`'s coroutine yielded `leaf` alone, and nobody else holds it: keep it in the
    /// coroutine's entry, and poll it.
    ///
    /// The leaf stays unscheduled (its state names no key) until `settle` files it: nobody
    /// else can yield it meanwhile.
    #[inline(always)]
    pub(super) fn hold(&mut self, token: u64, leaf: Rc<dyn Task + 's>) -> Result<(), Failure> {
        self.entry(token as u32).waits = Waits::Held(leaf);
        if self.poll_held(token)? {
            self.ready.push_back(token); // done at once: to the back, as when a child finishes
        }
        Ok(())
    }

    /// Polls the leaf `token`'s coroutine holds: true if it is done (and let go), false if it
    /// waits again, or failed.
    #[inline(always)]
    pub(super) fn poll_held(&mut self, token: u64) -> Result<bool, Failure> {
        let key = token as u32;
        let failure = match self.resume::<true>(token, Input::Go) {
            Ok(Step::Park(deadline)) => {
                self.park(token, deadline);
                return Ok(false);
            }
            Ok(Step::Done) => {
                let entry = self.entry(key);
                // The waiter holds the leaf's other handle: only a count drops here.
                (entry.pending, entry.waits) = (0, Waits::NOTHING);
                return Ok(true);
            }
            Ok(Step::Fail(error)) => Failure::Error(error),
            Ok(Step::Yield(_)) => unreachable!("a leaf does not yield"),
            Err(payload) => Failure::Panic(payload),
        };
        let leaf = self.settle(key).expect("a held leaf");
        self.fail(Origin::Failed(leaf), failure).map(|()| false)
    }

    /// Moves the leaf `key` holds, if any, into the table, as the one child `key` waits on;
    /// gives its key. Anything else, or an empty slot, is left as it is.
    pub(super) fn settle(&mut self, key: u32) -> Option<u32> {
        let Waits::Held(leaf) = &self.slots[key as usize].entry.as_ref()?.waits else {
            return None;
        };
        // The entry's handle goes once it waits on the child instead.
        let child = self.insert(leaf.clone(), self.slots[key as usize].scope);
        let waited = self.entry(child);
        (waited.pending, waited.waiters) = (1, Waiters::One(key));
        let token = self.token(child);
        self.entry(key).waits = Waits::Children(Keys::One(token));
        Some(child)
    }
}
