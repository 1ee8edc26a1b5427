//! One run of a loop: the table of coroutines, the ready queue and the timers. What happens when
//! something fails is in `run/failure.rs`.

// How it works. Every coroutine of a run has an entry in a table, found by its key; a leaf (a
// timer, a thread call, an event wait, a foreign future) too. An entry counts what its coroutine
// still waits on (`pending`) and lists who waits on it (`waiters`). Two things bring a count
// down: a coroutine it waits on finishes, or, for a leaf, its waker or its deadline fires (see
// `wake.rs`). At zero the coroutine goes to the back of the ready queue. The loop works in
// rounds: it takes in wake-ups (from its own thread, other threads, due timers), then resumes
// each coroutine that was ready at the start of the round, in order, and files what each one
// yielded; a leaf it yielded is polled at once, so that an event wait is registered, a timer
// set, a thread started, at the `yield_!`. With nothing ready it blocks until a wake-up or the
// next deadline. The loop resumes every coroutine itself, so nothing recurses. One shortcut
// keeps the order: a coroutine that pauses while nothing else is ready, no timer is set and no
// wake-up waits is resumed again at once, each pause counting as a round.
//
// When anything fails, every coroutine still in the table is resumed with a cancellation error
// (or dropped, if it never started), threads are told to stop and joined, and the original error
// comes out with the chain of coroutines that waited on the one that failed. When a timed wait
// (`timeout`) runs out, only what nobody else waits on below it is stopped that way, with a
// timeout error, and the waiter is resumed. One walk (`Run::stop`, in `run/failure.rs`) stops
// coroutines in every case, from each to what it waits on, with a work list.
//
// An `isolate` is a boundary: an entry whose scope holds every coroutine started inside it, at
// any depth (each entry names the boundary it belongs to). The boundary waits until all of its
// members have finished. An error inside fails only that scope: its members are stopped as a
// timeout stops its work, with a cancellation instead, and the boundary is resumed with the
// error. Nested isolates are entries like any other, so nothing recurses per level.

use std::any::Any;
use std::cell::Cell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::arrivals::{Keys, Waiters};
use crate::coro::{
    Caught, Contents, Cx, Ended, Failure, Inner, Input, Join, LINE, Owner, Step, Submission, Task,
    group,
};
use crate::error::{Error, ErrorGroup, Frame};
use crate::stall::{Stall, Suspended};
use crate::timers::Timers;
use crate::wake::{Cancel, LeafWaker, Remote};

mod failure;
mod held;
pub(crate) use failure::Origin;
use held::Waits;

/// The key of the run itself, as a waiter: whoever called [`Loop::run`](crate::Loop::run). As
/// a scope: the run's own, outside every isolate.
const ROOT: u32 = u32::MAX;

/// How far a call to advance a run got.
pub(crate) enum Progress<T> {
    /// Everything has finished, with the output.
    Finished(T),
    /// Rounds ran out with coroutines still ready.
    Ready,
    /// Nothing is ready: wait for a wake-up, or until the deadline.
    Blocked(Option<Instant>),
}

/// The state of one run: everything here is dropped when `run` returns.
pub(crate) struct Run<'s> {
    error_group: ErrorGroup,
    /// The table of coroutines, indexed by key.
    slots: Vec<Slot<'s>>,
    /// Keys of empty slots, for reuse. Room for every slot is kept: growing this list while
    /// coroutines finish would make glibc consolidate every chunk freed so far (a pause that
    /// grows with the table, in the middle of a burst of wake-ups).
    free: Vec<u32>,
    /// While a timed wait's work is being stopped (see `Run::expire`): the keys freed
    /// meanwhile, held back from reuse until it is over.
    held_back: Option<Vec<u32>>,
    /// Meanwhile too: each coroutine stopped that had one waiter (its key, frame and waiter),
    /// so that a failure further down is traced through the chain it was in.
    gone: HashMap<u32, (Frame, u32)>,
    /// Tokens of coroutines ready to be resumed, in order. A coroutine removed meanwhile (stopped
    /// by a timeout) leaves a stale token, skipped.
    ready: VecDeque<u64>,
    /// Deadlines, with the wake token of the leaf (or timed wait) each ends.
    timers: Timers,
    /// Where wake-ups from other threads (and wakers) arrive.
    pub(crate) remote: Arc<Remote>,
    /// Wake tokens taken from `remote`, kept to reuse the allocation.
    woken: Vec<u64>,
    /// Threads told to stop, to join before the run returns.
    joins: Vec<Join>,
    /// Errors of joined threads beside the failure raised for them, for the walk that failure
    /// starts to list with the errors met while cancelling.
    met: Vec<Error>,
    /// What the run was given, until its first round schedules it.
    pub(crate) submission: Option<Submission<'s>>,
    /// How many times a coroutine was resumed: progress, for the stall report.
    pub(crate) steps: u64,
    /// Leaves just scheduled, to start as soon as what yielded them is filed: an event wait is
    /// registered, a timer set, a thread started, at the `yield_!` (as in the original).
    fresh_leaves: Vec<u32>,
    /// Rounds the coroutine being resumed may take in place (see `Cx::spare`).
    spare: usize,
    /// The stall report of the loop that drives this run, if it has one.
    pub(crate) stall: Option<StallReport>,
    /// The clock as last read (see `Cx::now`).
    now: Instant,
    /// The isolated scopes, by the key of their boundary.
    scopes: HashMap<u32, Scope>,
}

/// What the run keeps of an isolated scope while its boundary waits.
struct Scope {
    /// The scope the boundary itself belongs to.
    parent: u32,
    /// What the boundary reads when it is resumed.
    caught: Rc<Caught>,
    /// Tokens of its members, in the order they joined. Those that have left are skipped, and
    /// dropped once they outnumber the rest, so that the list stays within a constant factor
    /// of the members still in (the boundary's `pending`).
    members: Vec<u64>,
}

/// The table and queues of a run, empty. A loop keeps them from one run to the next, like the
/// capacity of a `Vec`: a run reuses the room an earlier one grew, and a large table goes back to
/// the allocator when the loop is dropped rather than at the end of each run (where freeing it
/// makes glibc consolidate every small chunk freed during the run).
#[derive(Default)]
pub(crate) struct Room {
    slots: Vec<SlotRoom>,
    free: Vec<u32>,
    ready: VecDeque<u64>,
    timers: Timers,
    woken: Vec<u64>,
}

/// Room for one table slot: plain words of a slot's size and alignment, so that the table's
/// buffer is kept as data without `Rc`s and without a lifetime, and the loop stays `Send`.
#[derive(Clone, Copy)]
#[allow(dead_code, reason = "never read: only its layout matters")]
struct SlotRoom([usize; size_of::<Slot<'static>>() / size_of::<usize>()]);

const _: () = assert!(
    size_of::<SlotRoom>() == size_of::<Slot<'static>>()
        && align_of::<SlotRoom>() == align_of::<Slot<'static>>(),
    "a slot's room must have the slot's layout, or its buffer cannot be reused"
);

/// The same buffer, emptied, for elements of another type of the same layout: collecting an
/// empty vector in place keeps its allocation.
fn recycle<A, B>(mut buffer: Vec<A>) -> Vec<B> {
    buffer.clear();
    buffer.into_iter().map(|_| unreachable!("cleared")).collect()
}

/// After how long without progress to report a stall, and to whom (see
/// [`Loop::stall_report`](crate::Loop::stall_report)).
pub(crate) type StallReport = (Duration, Box<dyn Fn(&Stall) + Send>);

#[derive(Default)]
struct Slot<'s> {
    /// Bumped each time the slot takes an entry, so that a stale wake token is ignored.
    generation: u32,
    /// While the slot holds an entry: the isolated scope of the coroutines it starts, which is
    /// the boundary it belongs to (or `ROOT`), or its own key if it is a boundary. A boundary's
    /// `pending` counts its members. Kept here rather than in the entry, where it would not fit
    /// in the padding.
    scope: u32,
    entry: Option<Entry<'s>>,
    /// The last waker made for a leaf in this slot, reused when nobody else holds it any more.
    waker: Cell<Option<Arc<LeafWaker>>>,
}

struct Entry<'s> {
    task: Rc<dyn Task + 's>,
    /// Who waits on this coroutine (keys: a waiter outlives what it waits on).
    waiters: Waiters,
    /// What it waits on, until it is resumed.
    waits: Waits<'s>,
    /// How many of the children it waits on have not finished; for a parked leaf, or a
    /// coroutine whose held leaf is parked, 1 (the wake-up).
    pending: u32,
    /// The line this coroutine is suspended at; 0 until it first suspends (see `Task::frame`).
    line: u32,
}

/// Names one use of a slot: the key in the low 32 bits, the slot's generation (cut to 29 bits)
/// above, and flags above that: [`DEADLINE`] marks the deadline of a timed wait (see
/// [`timeout`](crate::timeout)) rather than of a leaf; [`CANCEL`] is that flag and bit 61, for a
/// timed wait cancelled on demand (see [`cancellable`](crate::cancellable)).
fn token(key: u32, generation: u32) -> u64 {
    (u64::from(generation & ((1 << 29) - 1)) << 32) | u64::from(key)
}

const DEADLINE: u64 = 1 << 63;
const CANCEL: u64 = DEADLINE | 1 << 61;

impl<'s> Run<'s> {
    pub(crate) fn new(remote: Arc<Remote>, error_group: ErrorGroup, room: Room) -> Self {
        Run {
            error_group,
            slots: recycle(room.slots),
            free: room.free,
            held_back: None,
            gone: HashMap::new(),
            ready: room.ready,
            timers: room.timers,
            remote,
            woken: room.woken,
            joins: Vec::new(),
            met: Vec::new(),
            submission: None,
            steps: 0,
            fresh_leaves: Vec::new(),
            spare: 0,
            stall: None,
            now: Instant::now(),
            scopes: HashMap::new(),
        }
    }

    /// Empties the table and queues of a run that has ended, for the next run to reuse.
    pub(crate) fn take_room(&mut self) -> Room {
        let mut room = Room {
            slots: recycle(std::mem::take(&mut self.slots)),
            free: std::mem::take(&mut self.free),
            ready: std::mem::take(&mut self.ready),
            timers: std::mem::take(&mut self.timers),
            woken: std::mem::take(&mut self.woken),
        };
        room.free.clear();
        room.ready.clear();
        room.timers.clear();
        room.woken.clear();
        room
    }

    /// Runs up to `rounds` rounds: until everything has finished, nothing is ready, or the
    /// rounds are used up.
    pub(crate) fn advance(&mut self, mut rounds: usize) -> Result<Progress<()>, Failure> {
        // A run polled by an executor (`to_future`) hands back whenever it waits.
        let _advancing = self.remote.advancing(!crate::event_loop::driven());
        if let Some(submission) = self.submission.take() {
            let Contents { first, rest, .. } = submission.into_contents();
            // The run waits for what the root waits on as for everything else: until the table
            // is empty.
            if let Err(refused) = self.submit(ROOT, first, rest) {
                return Err(self.crash(Origin::Outside, Failure::Error(refused)));
            }
            self.start_leaves()?;
        }
        loop {
            if self.remote.stopped.load(Ordering::Relaxed)
                && self.remote.stopped.swap(false, Ordering::Relaxed)
            {
                return Err(self.crash(Origin::Outside, Failure::Error(Error::stopped())));
            }
            self.take_wakeups()?;
            let round = self.ready.len();
            if round == 0 {
                if self.slots.len() == self.free.len() {
                    return Ok(Progress::Finished(()));
                }
                if self.remote.interrupted() {
                    // Woken (or stopped) while taking the others in, from inside the run, which
                    // wakes no driver: look again rather than report itself blocked.
                    continue;
                }
                return Ok(Progress::Blocked(self.timers.next()));
            }
            if rounds == 0 {
                return Ok(Progress::Ready);
            }
            rounds -= 1;
            for _ in 0..round {
                let ready = self.ready.pop_front().expect("counted");
                if self.live(ready).is_some() {
                    // Alone in the queue, with no timer to check: it may pause in place, as the
                    // rounds it would otherwise take through the queue resume it alone.
                    let spare =
                        if self.ready.is_empty() && self.timers.is_empty() { rounds } else { 0 };
                    self.spare = spare;
                    let stepped = self.step(ready, Input::Go);
                    let used = spare - std::mem::take(&mut self.spare);
                    rounds -= used;
                    self.steps += used as u64;
                    stepped?;
                    // Work cancelled by this step (a race it won, say) stops now, before what
                    // it stops runs in this round: a second runner must not take a value.
                    if crate::wake::take_cancelled() {
                        self.take_wakeups()?;
                    }
                }
            }
        }
    }

    /// Moves leaves woken from outside, and leaves whose deadline passed, to the ready queue.
    fn take_wakeups(&mut self) -> Result<(), Failure> {
        self.remote.take_woken(&mut self.woken);
        for i in 0..self.woken.len() {
            self.wake(self.woken[i])?;
        }
        self.woken.clear();
        if !self.timers.is_empty() {
            let now = Instant::now();
            self.now = now;
            while let Some(token) = self.timers.pop_due(now) {
                self.wake(token)?;
            }
        }
        Ok(())
    }

    /// Readies a parked leaf, or ends a timed wait; ignores tokens of coroutines that have moved
    /// on.
    fn wake(&mut self, woken: u64) -> Result<(), Failure> {
        let Some(key) = self.live(woken) else {
            return Ok(());
        };
        let entry = self.entry(key);
        if woken & DEADLINE != 0 {
            // A wait that has ended already (its work finished first) ignores it.
            if entry.pending > 0 {
                let cancelled = woken & CANCEL == CANCEL;
                return self.expire(key, if cancelled { Input::Cancel } else { Input::Timeout });
            }
        } else if entry.pending == 1
            // A parked leaf, or a holder: not a boundary, whose pending counts members, nor a
            // coroutine waiting on children.
            && (matches!(entry.waits, Waits::Held(_)) || entry.task.is_leaf())
        {
            entry.pending = 0;
            self.ready.push_back(woken); // live: `woken` is the token of this use of the slot
        }
        Ok(())
    }

    /// Resumes one coroutine, catching a panic.
    ///
    /// Inlined into the few places that resume: the context it builds then stays in registers.
    /// With `HELD`, resumes the leaf the coroutine holds instead.
    #[inline(always)]
    fn resume<const HELD: bool>(
        &mut self,
        token: u64,
        input: Input,
    ) -> std::thread::Result<Step<'s>> {
        self.steps += 1;
        let Run { slots, remote, joins, spare, now, .. } = self;
        let now = *now;
        let slot = &slots[token as u32 as usize];
        let entry = slot.entry.as_ref().expect("resumed coroutines are in the table");
        let waker = || {
            let waker = LeafWaker::reuse(slot.waker.take(), remote, token);
            slot.waker.set(Some(waker.clone()));
            Waker::from(waker)
        };
        let mut cx = Cx { waker: &waker, joins, spare, remote, now };
        let task = match &entry.waits {
            Waits::Held(leaf) if HELD => leaf,
            _ => &entry.task,
        };
        panic::catch_unwind(AssertUnwindSafe(|| task.resume(input, &mut cx)))
    }

    /// Resumes one coroutine (named by its token) and files what it asks for.
    fn step(&mut self, token: u64, input: Input) -> Result<(), Failure> {
        let key = token as u32;
        if let Waits::Held(_) = self.entry(key).waits
            && !self.poll_held(token)?
        {
            return Ok(());
        }
        match self.resume::<false>(token, input) {
            Ok(Step::Yield(request)) => {
                self.entry(key).line = LINE.get();
                let contents = match request.into_submission().0 {
                    Inner::Other(None) => {
                        self.ready.push_back(token); // a plain pause: to the back of the queue
                        return Ok(());
                    }
                    Inner::One(leaf)
                        if leaf.is_leaf()
                            && leaf.owner() == Some(Owner::Fresh)
                            // The submission's handle and the waiter's, to read the output
                            // from: as a `Coroutine` is not `Clone`, nobody else can yield it.
                            && Rc::strong_count(&leaf) == 2 =>
                    {
                        return self.hold(token, leaf);
                    }
                    inner => Submission(inner).into_contents(),
                };
                self.entry(key).waits = Waits::NOTHING;
                let Contents { first, rest, deadline, cancel, boundary, .. } = contents;
                if let Some(caught) = boundary {
                    self.open(key, caught);
                }
                let pending = match self.submit(key, first, rest) {
                    Ok(pending) => pending,
                    Err(refused) => {
                        return self.fail(Origin::Suspended(key), Failure::Error(refused));
                    }
                };
                let entry = self.entry(key);
                entry.pending += pending; // a boundary has counted its members as they joined
                let pending = entry.pending;
                if pending == 0 {
                    self.ready.push_back(token);
                } else if let Some(deadline) = deadline {
                    self.timers.push(deadline, token | DEADLINE);
                }
                // A wait already given up on starts none of its leaves: the stop that the next
                // round makes drops them unstarted, so a thread call never runs (one that
                // another coroutine waits on by then is left to it, and started by it: see
                // `file`).
                let over = deadline.is_some_and(|deadline| deadline <= Instant::now())
                    || cancel.as_ref().is_some_and(|cancel| cancel.is_cancelled());
                if let Some(cancel) = cancel {
                    self.arm(&cancel, token);
                }
                if over {
                    self.fresh_leaves.clear();
                } else if !self.fresh_leaves.is_empty() {
                    self.start_leaves()?;
                }
            }
            Ok(Step::Park(deadline)) => self.park(token, deadline),
            Ok(Step::Done) => self.finish(key)?,
            Ok(Step::Fail(error)) => return self.fail(Origin::Failed(key), Failure::Error(error)),
            Err(payload) => return Err(self.crash(Origin::Failed(key), Failure::Panic(payload))),
        }
        Ok(())
    }

    /// `token`'s coroutine has filed a wait that `cancel` can end (see
    /// [`cancellable`](crate::cancellable)); one over already (its work had finished) is not
    /// armed. Out of line: only such a wait pays for it.
    #[cold]
    #[inline(never)]
    fn arm(&mut self, cancel: &Cancel, token: u64) {
        if self.entry(token as u32).pending > 0 {
            cancel.arm(Waker::from(LeafWaker::new(&self.remote, token | CANCEL)));
        }
    }

    /// A leaf waits for its wake-up, or for `deadline`.
    fn park(&mut self, token: u64, deadline: Option<Instant>) {
        self.entry(token as u32).pending = 1;
        if let Some(deadline) = deadline {
            self.timers.push(deadline, token);
        }
    }

    /// Whether `key`'s entry is `task` itself (else it is scheduled in another run).
    fn holds(&self, key: u32, task: &Rc<dyn Task + 's>) -> bool {
        let entry = self.slots.get(key as usize).and_then(|slot| slot.entry.as_ref());
        entry.is_some_and(|entry| Rc::ptr_eq(&entry.task, task))
    }

    /// The key a token names, if that coroutine is still in the table.
    #[inline]
    fn live(&self, token: u64) -> Option<u32> {
        let key = token as u32;
        let slot = self.slots.get(key as usize)?;
        (slot.entry.is_some() && self.token(key) == token & !CANCEL).then_some(key)
    }

    fn token(&self, key: u32) -> u64 {
        token(key, self.slots[key as usize].generation)
    }

    /// Puts a coroutine at the back of the ready queue.
    fn schedule(&mut self, key: u32) {
        let token = self.token(key);
        self.ready.push_back(token);
    }

    fn entry(&mut self, key: u32) -> &mut Entry<'s> {
        self.slots[key as usize].entry.as_mut().expect("live key")
    }

    fn entry_ref(&self, key: u32) -> &Entry<'s> {
        self.slots[key as usize].entry.as_ref().expect("live key")
    }

    /// Files what `waiter` yielded: schedules new coroutines, and returns how many it must wait
    /// for; or the error that refuses what it yielded.
    fn submit(
        &mut self,
        waiter: u32,
        first: Option<Rc<dyn Task + 's>>,
        rest: Vec<(Rc<dyn Task + 's>, bool)>,
    ) -> Result<u32, Error> {
        if !rest.is_empty() {
            let count = usize::from(first.is_some()) + rest.len();
            self.slots.reserve(count.saturating_sub(self.free.len()));
            self.ready.reserve(count);
        }
        let scope = if waiter == ROOT { ROOT } else { self.slots[waiter as usize].scope };
        let mut pending = 0;
        for (task, wait) in first.map(|task| (task, true)).into_iter().chain(rest) {
            pending += self.file(waiter, scope, task, wait)?;
        }
        Ok(pending)
    }

    /// Files one coroutine `waiter` yielded, into `scope` if new: returns 1 if `waiter` must
    /// wait for it. One scheduled in another isolated scope is refused, as one of another run
    /// is: a failure there would not reach `waiter`, nor one here its waiters there.
    fn file(
        &mut self,
        waiter: u32,
        scope: u32,
        task: Rc<dyn Task + 's>,
        wait: bool,
    ) -> Result<u32, Error> {
        // A leaf in the table is started by the step that filed it, unless that wait was over
        // already (see `step`): a new waiter then starts it, as nobody else would.
        let mut unstarted_leaf = false;
        let key = match task.owner() {
            Some(Owner::Finished) => return Ok(0),
            Some(Owner::Fresh) => {
                let key = self.insert(task, scope);
                if self.entry(key).task.is_leaf() {
                    self.fresh_leaves.push(key);
                } else {
                    self.schedule(key);
                }
                key
            }
            Some(Owner::Scheduled { key })
                if self.holds(key, &task) && self.member_scope(key) == scope =>
            {
                if wait && let Some(cycle) = self.find_cycle(waiter, key) {
                    let error = Error::cancelled_because(format!("cycle detected: {cycle}"));
                    return Err(error);
                }
                unstarted_leaf = task.is_leaf() && !task.started();
                key
            }
            owner => {
                let why = match owner {
                    // It is running, in a loop this one runs inside.
                    None => {
                        "is running: this loop runs inside it, so it cannot wait on it (it has no \
                         output yet)"
                    }
                    Some(Owner::Dead(Ended::Failed)) => "failed, so it has no output to give",
                    Some(Owner::Dead(Ended::Cancelled)) => {
                        "was cancelled when its run (or the isolate it ran in) failed, so it has \
                         no output to give; it is never started again"
                    }
                    Some(Owner::Dead(Ended::TimedOut)) => {
                        "was stopped by a timeout, so it has no output to give; it is never \
                         started again"
                    }
                    Some(Owner::Dead(Ended::Withdrawn)) => {
                        "was cancelled (by a `CancelHandle` or a `race`), so it has no output to \
                         give; it is never started again"
                    }
                    _ => {
                        "has already started in another loop run and has not finished there, so \
                         it has no output to give; to use one result in several loops, pass it \
                         through `tinyio::copy`"
                    }
                };
                let name = task.frame(0).name;
                return Err(Error::cancelled_because(format!("coroutine `{name}` {why}")));
            }
        };
        if !wait || !self.entry(key).waiters.push(waiter) {
            return Ok(0); // not waited for, or waited for already (a `Shared` yielded twice)
        }
        if unstarted_leaf {
            self.fresh_leaves.push(key);
        }
        if waiter != ROOT {
            let child = self.token(key);
            let Waits::Children(keys) = &mut self.entry(waiter).waits else {
                unreachable!("a coroutine holding a leaf waits on nothing else")
            };
            keys.push(child);
        }
        Ok(1)
    }

    /// Starts the leaves scheduled by the request just filed.
    fn start_leaves(&mut self) -> Result<(), Failure> {
        // A failure of an isolated scope empties the list: the leaves left were in that scope.
        let mut i = 0;
        while let Some(&key) = self.fresh_leaves.get(i) {
            self.step(self.token(key), Input::Go)?;
            i += 1;
        }
        self.fresh_leaves.clear();
        Ok(())
    }

    fn insert(&mut self, task: Rc<dyn Task + 's>, scope: u32) -> u32 {
        // Until it first suspends, a coroutine is placed at its definition (see `Task::frame`).
        let line = 0;
        let key = match self.free.pop() {
            Some(key) => key,
            None => {
                let key = u32::try_from(self.slots.len()).ok().filter(|&k| k != ROOT);
                let key = key.expect("more than 4 billion coroutines at once");
                self.slots.push(Slot::default());
                let room = self.slots.capacity();
                if self.free.capacity() < room {
                    self.free.reserve_exact(room - self.free.len());
                }
                key
            }
        };
        // Built in place, into a slot known to be empty (a new slot is pushed empty above).
        task.schedule(key);
        let slot = &mut self.slots[key as usize];
        assert!(slot.entry.is_none(), "a free slot is empty");
        // A new use of the slot: tokens of the last one go stale.
        slot.generation = slot.generation.wrapping_add(1);
        slot.entry =
            Some(Entry { line, task, waiters: Waiters::None, waits: Waits::NOTHING, pending: 0 });
        slot.scope = scope;
        if scope != ROOT {
            self.join(scope, key);
        }
        key
    }

    /// Inlined: out of line, it costs every coroutine a copy of its entry on the way out.
    #[inline(always)]
    fn remove(&mut self, key: u32) -> Entry<'s> {
        match &mut self.held_back {
            None => self.free.push(key),
            Some(held_back) => held_back.push(key),
        }
        let slot = &mut self.slots[key as usize];
        let (entry, scope) = (slot.entry.take().expect("live key"), slot.scope);
        if scope != ROOT {
            self.leave(key, scope);
        }
        entry
    }

    /// `key` yielded the work of an [`isolate`](crate::isolate): it becomes the boundary of a
    /// scope of its own, which what it yielded joins.
    fn open(&mut self, key: u32, caught: Rc<Caught>) {
        let parent = std::mem::replace(&mut self.slots[key as usize].scope, key);
        self.scopes.insert(key, Scope { parent, caught, members: Vec::new() });
    }

    /// `key`, just inserted, joins the scope of the boundary `scope`; unless that scope is being
    /// stopped (a held leaf settled in it then), and has no record any more (as in `leave`).
    /// Out of line, as `leave`.
    #[inline(never)]
    fn join(&mut self, scope: u32, key: u32) {
        let member = self.token(key);
        let Some(Scope { members, .. }) = self.scopes.get_mut(&scope) else {
            return;
        };
        members.push(member);
        let boundary = self.slots[scope as usize].entry.as_mut().expect("live key");
        boundary.pending += 1;
        if members.len() >= 2 * boundary.pending as usize + 8 {
            let slots = &self.slots;
            members.retain(|&member| {
                let slot = &slots[member as u32 as usize];
                slot.entry.is_some() && token(member as u32, slot.generation) == member
            });
        }
    }

    /// `key`, taken out of the table, leaves `scope` (its own key if it is a boundary). The
    /// last member to leave readies the boundary. A scope being stopped has no record any more:
    /// its members leave it quietly. Out of line, so that `remove`, which every coroutine pays,
    /// stays small enough to be inlined.
    #[inline(never)]
    fn leave(&mut self, key: u32, mut scope: u32) {
        if scope == key {
            let Some(closed) = self.scopes.remove(&key) else { return };
            scope = closed.parent;
        }
        if scope != ROOT && self.scopes.contains_key(&scope) {
            self.done_waiting(scope); // the boundary waits on its members
        }
    }

    /// The isolated scope `key` belongs to (`ROOT`: none).
    fn member_scope(&self, key: u32) -> u32 {
        let scope = self.slots[key as usize].scope;
        if scope != key { scope } else { self.scopes.get(&key).map_or(ROOT, |scope| scope.parent) }
    }

    /// A coroutine finished: wake whoever waited on it.
    fn finish(&mut self, key: u32) -> Result<(), Failure> {
        let Entry { task, waiters, .. } = self.remove(key);
        // The last handle may be the table's (a background coroutine): its output drops here.
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(task))) {
            return Err(self.crash(Origin::Outside, Failure::Panic(payload)));
        }
        match waiters {
            Waiters::None => {}
            Waiters::One(waiter) => self.done_waiting(waiter),
            Waiters::Many(many) => many.iter().for_each(|waiter| self.done_waiting(waiter)),
        }
        Ok(())
    }

    /// One coroutine `waiter` waited on has finished.
    fn done_waiting(&mut self, waiter: u32) {
        if waiter == ROOT {
            return; // the run ends once the table is empty
        }
        let waiting = self.entry(waiter);
        waiting.pending -= 1;
        if waiting.pending == 0 {
            self.schedule(waiter);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_takes_over_the_room_of_the_last_and_gives_it_back() {
        let mut run = Run::new(Arc::default(), ErrorGroup::Auto, Room::default());
        run.slots.reserve(1000);
        run.free.reserve(1000);
        let (buffer, capacity) = (run.slots.as_ptr().addr(), run.slots.capacity());

        let room = run.take_room();
        assert_eq!(room.slots.as_ptr().addr(), buffer, "the table's buffer was not kept");
        assert!(room.slots.capacity() >= capacity && room.free.capacity() >= 1000);

        let next = Run::new(Arc::default(), ErrorGroup::Auto, room);
        assert_eq!(next.slots.as_ptr().addr(), buffer);
        assert!(next.slots.is_empty() && next.slots.capacity() >= capacity);
    }
}
