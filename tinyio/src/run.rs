//! One run of a loop: the table of coroutines, the ready queue, the timers, and what happens
//! when something fails.

// How it works. Every coroutine of a run has an entry in a table, found by its key. An entry
// counts what its coroutine still waits on (`pending`) and lists who waits on it (`waiters`).
// Two things bring a count down: a coroutine it waits on finishes, or (for a leaf: a timer, a
// thread, an event wait, a foreign future) its waker or deadline fires. At zero the coroutine
// goes to the back of the ready queue. The loop works in rounds: it takes in wake-ups from
// outside (other threads, due timers), then resumes each coroutine that was ready at the start of
// the round, in order, and files what each one yielded. With nothing ready it blocks until a
// wake-up or the next deadline. The loop resumes every coroutine itself, so nothing recurses.
// One shortcut keeps the order: a coroutine that pauses while nothing else is ready, no timer is
// set and no wake-up waits is resumed again at once, each pause counting as a round. And a
// coroutine that waits on one leaf that nobody else can yield keeps it in its own entry: the leaf
// wakes the coroutine's token, and is polled when the coroutine is resumed, which spares it a
// table entry and a round.
//
// When anything fails, every coroutine still in the table is resumed with a cancellation error
// (or dropped, if it never started), threads are told to stop and joined, and the original error
// comes out with the chain of coroutines that waited on the one that failed. When a timed wait
// (`timeout`) runs out, only what nobody else waits on below it is stopped that way, with a
// timeout error, and the waiter is resumed.
//
// An `isolate` is a boundary: an entry whose scope holds every coroutine started inside it, at
// any depth (each entry names the boundary it belongs to). The boundary waits until all of its
// members have finished. An error inside fails only that scope: its members are stopped as a
// timeout stops its work, with a cancellation instead, and the boundary is resumed with the
// error. Nested isolates are entries like any other, so nothing recurses per level.

use std::any::Any;
use std::cell::Cell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use crate::arrivals::Arrivals;
use crate::coro::{Caught, Cx, Ended, Failure, Input, Join, Owner, Step, Submission, Task, group};
use crate::error::{Error, ErrorGroup, Frame};
use crate::stall::{Stall, Suspended};
use crate::timers::Timers;
use crate::wake::{Cancel, LeafWaker, Remote};

/// The key of the run itself, as a waiter: whoever called [`Loop::run`](crate::Loop::run). As
/// a scope: the run's own, outside every isolate.
const ROOT: u32 = u32::MAX;

static NEXT_RUN: AtomicU32 = AtomicU32::new(1);

/// The coroutine a failure came from.
#[derive(Clone, Copy)]
pub(crate) enum Origin {
    /// None: the loop was stopped, or the root yielded something invalid.
    Outside,
    /// It failed or panicked, and has finished.
    Failed(u32),
    /// It is suspended: what it yielded was invalid (a cycle, say). It is cancelled with the rest.
    Suspended(u32),
}

pub(crate) enum Progress<T> {
    Finished(T),
    /// Rounds ran out with coroutines still ready.
    Ready,
    /// Nothing is ready: wait for a wake-up, or until the deadline.
    Blocked(Option<Instant>),
}

/// The state of one run: everything here is dropped when `run` returns.
pub(crate) struct Run<'s> {
    /// Tells runs apart, so that a coroutine knows which run it belongs to (see `Owner`).
    id: u32,
    error_group: ErrorGroup,
    /// The table of coroutines, indexed by key.
    slots: Vec<Slot<'s>>,
    /// Keys of empty slots, for reuse. Room for every slot is kept: growing this list while
    /// coroutines finish would make glibc consolidate every chunk freed so far (a pause of
    /// half a millisecond per ten thousand coroutines, in the middle of a burst of wake-ups).
    free: Vec<u32>,
    /// Tokens of coroutines ready to be resumed, in order. A coroutine removed meanwhile (stopped
    /// by a timeout) leaves a stale token, skipped.
    ready: VecDeque<u64>,
    /// Deadlines, with the wake token of the leaf (or timed wait) each ends.
    timers: Timers,
    /// Where wake-ups from other threads (and wakers) arrive.
    remote: Arc<Remote>,
    /// Wake tokens taken from `remote`, kept to reuse the allocation.
    woken: Vec<u64>,
    /// How many of the coroutines the root waits on have not finished.
    root_pending: u32,
    /// Threads told to stop, to join before the run returns.
    joins: Vec<Join>,
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
/// makes glibc consolidate every small chunk freed during the run: 6-8% of a run of many short
/// coroutines).
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
    buffer
        .into_iter()
        .map(|_| unreachable!("cleared"))
        .collect()
}

/// After how long without progress to report a stall, and to whom (see
/// [`Loop::stall_report`](crate::Loop::stall_report)).
pub(crate) type StallReport = (Duration, Box<dyn Fn(&Stall) + Send>);

struct Slot<'s> {
    /// Bumped each time the slot is reused, so that a stale wake token is ignored.
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
    /// The coroutines it waits on, by token (a child may finish and its slot be reused
    /// meanwhile), until it is resumed.
    waits: Keys<u64>,
    /// How many of the children it waits on have not finished; for a parked leaf, 1 (the
    /// wake-up).
    pending: u32,
    /// The line this coroutine is suspended at; its definition's line until it first suspends.
    line: u32,
}

/// Tokens of coroutines: usually one, sometimes many (boxed, to keep entries small).
#[derive(Default)]
enum Keys<K> {
    #[default]
    None,
    One(K),
    #[allow(
        clippy::box_collection,
        reason = "one pointer, not three, in every entry"
    )]
    Many(Box<Vec<K>>),
}

impl<K: Copy> Keys<K> {
    fn push(&mut self, key: K) {
        *self = match std::mem::take(self) {
            Keys::None => Keys::One(key),
            Keys::One(first) => Keys::Many(Box::new(vec![first, key])),
            Keys::Many(mut keys) => {
                keys.push(key);
                Keys::Many(keys)
            }
        }
    }

    fn as_slice(&self) -> &[K] {
        match self {
            Keys::None => &[],
            Keys::One(key) => std::slice::from_ref(key),
            Keys::Many(keys) => keys,
        }
    }
}

/// Who waits on a coroutine, each once, in the order they came: usually one, sometimes many
/// (boxed, to keep entries small). A waiter that stops waiting while the coroutine goes on (its
/// timed wait ran out) leaves in O(log n).
#[derive(Default)]
enum Waiters {
    #[default]
    None,
    One(u32),
    Many(Box<Arrivals<u32, ()>>),
}

impl Waiters {
    /// Adds `waiter` at the back; false if it waits here already (it counts once).
    fn push(&mut self, waiter: u32) -> bool {
        match self {
            Waiters::None => *self = Waiters::One(waiter),
            Waiters::One(first) if *first == waiter => return false,
            Waiters::One(first) => {
                let mut many = Arrivals::default();
                many.push(*first, ());
                many.push(waiter, ());
                *self = Waiters::Many(Box::new(many));
            }
            Waiters::Many(many) => return many.push(waiter, ()),
        }
        true
    }

    fn remove(&mut self, waiter: u32) {
        match self {
            Waiters::One(one) if *one == waiter => *self = Waiters::None,
            Waiters::Many(many) => drop(many.remove(waiter)),
            _ => {}
        }
    }

    /// Whether anyone but `waiter` waits here.
    fn others_than(&self, waiter: u32) -> bool {
        match self {
            Waiters::None => false,
            Waiters::One(one) => *one != waiter,
            Waiters::Many(many) => many.len() > usize::from(many.contains(waiter)),
        }
    }

    /// The waiters, first come first.
    fn iter(&self) -> impl Iterator<Item = u32> {
        let (one, many) = match self {
            Waiters::None => (None, None),
            Waiters::One(one) => (Some(*one), None),
            Waiters::Many(many) => (None, Some(many.iter().map(|(waiter, ())| waiter))),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// Names one use of a slot: a key and the slot's generation. Two top bits are flags: one marks
/// the deadline of a timed wait (see [`timeout`](crate::timeout)) rather than of a leaf, the
/// other, with the first, a timed wait cancelled on demand (see [`cancellable`](crate::cancellable)).
fn token(key: u32, generation: u32) -> u64 {
    (u64::from(generation & ((1 << 29) - 1)) << 32) | u64::from(key)
}

const DEADLINE: u64 = 1 << 63;
pub(crate) const CANCEL: u64 = DEADLINE | 1 << 61;

impl<'s> Run<'s> {
    /// Joins the threads of leaves stopped by a timeout, once everything else has finished.
    pub(crate) fn finish_threads(&mut self) -> Result<(), Failure> {
        let mut first = None;
        self.join_threads(0, |_, failure| {
            if first.is_none() {
                first = failure;
            }
        });
        match first {
            Some(failure) => Err(self.crash(Origin::Outside, failure)),
            None => Ok(()),
        }
    }

    /// Waits for the thread calls told to stop (the joins from index `from` on), handing
    /// `joined` each one's index and failure. A thread that ignores its cancellation blocks
    /// here; once the stall threshold passes, the stall report names the calls still waited for.
    fn join_threads(&mut self, from: usize, mut joined: impl FnMut(usize, Option<Failure>)) {
        let mut joins = self.joins.split_off(from);
        let since = Instant::now();
        let mut report_at = self.stall.as_ref().map(|(threshold, _)| since + *threshold);
        let mut i = 0;
        while let Some(join) = joins.get_mut(i) {
            match (join.wait)(report_at) {
                Poll::Ready(failure) => {
                    joined(from + i, failure);
                    i += 1;
                }
                Poll::Pending => {
                    let (_, report) = self.stall.as_ref().expect("a deadline comes with a report");
                    report(&Stall {
                        idle: since.elapsed(),
                        coroutines: Vec::new(),
                        joining: joins[i..].iter().map(|join| join.frame).collect(),
                    });
                    report_at = None;
                }
            }
        }
    }

    pub(crate) fn new(remote: Arc<Remote>, error_group: ErrorGroup, room: Room) -> Self {
        Run {
            id: NEXT_RUN.fetch_add(1, Ordering::Relaxed),
            error_group,
            slots: recycle(room.slots),
            free: room.free,
            ready: room.ready,
            timers: room.timers,
            remote,
            woken: room.woken,
            root_pending: 0,
            joins: Vec::new(),
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

    pub(crate) fn remote(&self) -> &Remote {
        &self.remote
    }

    /// Runs rounds until everything has finished, or nothing is ready.
    pub(crate) fn advance(&mut self, mut rounds: usize) -> Result<Progress<()>, Failure> {
        let _advancing = self.remote.advancing();
        if let Some(submission) = self.submission.take() {
            self.root_pending = self
                .submit(ROOT, submission)
                .map_err(|refused| self.crash(Origin::Outside, Failure::Error(refused)))?;
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
                    debug_assert_eq!(self.root_pending, 0);
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
                    let spare = if self.ready.is_empty() && self.timers.is_empty() {
                        rounds
                    } else {
                        0
                    };
                    self.spare = spare;
                    let stepped = self.step(ready, Input::Go);
                    let used = spare - std::mem::take(&mut self.spare);
                    rounds -= used;
                    self.steps += used as u64;
                    stepped?;
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
                return self.expire(
                    key,
                    if cancelled {
                        Input::Cancel
                    } else {
                        Input::Timeout
                    },
                );
            }
        } else if entry.pending == 1 && entry.waits.as_slice().is_empty() {
            entry.pending = 0;
            self.schedule(key);
        }
        Ok(())
    }

    /// A timed wait ran out, or was cancelled: stop what `key` waits on (and what only that
    /// waits on, and so on) by resuming it with `input` (a timeout error, or a cancellation),
    /// then resume `key` with a deadline error. A cancellation first joins the threads it told
    /// to stop, so that nothing of the work runs once a `cancellable` or a `race` goes on; a
    /// timeout gives up at its deadline, and leaves them to be joined when the run (or the
    /// isolate it is in) ends.
    fn expire(&mut self, key: u32, input: Input) -> Result<(), Failure> {
        let waits = std::mem::take(&mut self.entry(key).waits);
        let mut todo = vec![(key, waits)];
        let (joins, scope) = (self.joins.len(), self.slots[key as usize].scope);
        let mut failed = self.stop(&mut todo, input, None);
        if failed.is_none() && input == Input::Cancel {
            // A thread that ends with an error of its own fails the scope of the timed wait.
            self.join_threads(joins, |_, failure| {
                if failed.is_none() {
                    failed = failure.map(|failure| (Origin::Outside, failure));
                }
            });
        }
        if scope != ROOT {
            // The threads it told to stop belong to the scope of the timed wait.
            let stopped = self.joins.split_off(joins);
            let caught = &self.scopes.get_mut(&scope).expect("open").caught;
            caught.joins.borrow_mut().extend(stopped);
        }
        if let Some((origin, failure)) = failed {
            // It fails the scope of the timed wait, which holds what was left to stop.
            return match failure {
                Failure::Error(error) if scope != ROOT => self.catch(scope, origin, error, todo),
                failure => Err(self.crash(origin, failure)),
            };
        }
        self.entry(key).pending = 0;
        self.step(self.token(key), Input::Deadline)
    }

    /// Stops coroutines. Each `(waiter, tokens)` of `todo` names coroutines that `waiter` (being
    /// stopped, or a boundary) waits on or has started. Each is resumed with `input` at its
    /// suspension point (or dropped if it never started), then the leaf it holds is, and it
    /// leaves the table; then so is what it waited on, and for a boundary, every member of its
    /// scope. A work list, so nothing recurses.
    ///
    /// With `record` (a failed scope: all of it stops), how each one answered is filed there
    /// and the walk goes on. Without (a timeout), one that someone else still waits on goes on,
    /// and the walk ends at the first that answers with anything but that error, or panics: it
    /// gives what happened and where, and leaves what it has not stopped yet in `todo`.
    fn stop(
        &mut self,
        todo: &mut Vec<(u32, Keys<u64>)>,
        input: Input,
        mut record: Option<&mut Cancelled>,
    ) -> Option<(Origin, Failure)> {
        let ended = match input {
            Input::Timeout => Ended::TimedOut,
            Input::Cancel if record.is_none() => Ended::Withdrawn,
            _ => Ended::Cancelled,
        };
        while let Some((parent, tokens)) = todo.pop() {
            let tokens = tokens.as_slice();
            for (i, &child) in tokens.iter().enumerate() {
                let Some(child) = self.live(child) else {
                    continue;
                }; // finished meanwhile
                let entry = self.entry(child);
                // A timeout stops only what nobody else waits on. A failed scope stops every
                // member, whoever waits on it (all of them inside), so it need not look.
                if record.is_none() && entry.waiters.others_than(parent) {
                    entry.waiters.remove(parent);
                    continue; // someone outside still waits on it
                }
                let (task, line) = (entry.task.clone(), entry.line);
                let (token, frame) = (self.token(child), task.site().frame(line));
                // Judged while still linked to its waiter, so that a failure is traced through
                // the chain that was waiting on it.
                let answered = if task.started() {
                    self.resume(token, input).and_then(|step| {
                        panic::catch_unwind(AssertUnwindSafe(|| {
                            answer(step, &*task, |error| {
                                error.is_timeout() || error.is_cancelled()
                            })
                        }))
                    })
                } else {
                    panic::catch_unwind(AssertUnwindSafe(|| task.discard()))
                        .map(|()| Ok(Error::cancelled()))
                };
                let mut failed = None;
                match (answered, record.as_deref_mut()) {
                    (answered, Some(cancelled)) => {
                        let trace = |error: Error| error.traced(frame, Vec::new());
                        let answered = answered.map(|a| a.map(trace).map_err(trace));
                        cancelled.record(answered, true, None);
                    }
                    (Ok(Ok(_)), None) => {}
                    (Ok(Err(error)), None) => {
                        failed = Some((Origin::Failed(child), Failure::Error(error)));
                    }
                    (Err(payload), None) => {
                        // A coroutine that never started is still in the table, to cancel.
                        let origin = if task.started() {
                            Origin::Failed(child)
                        } else {
                            Origin::Outside
                        };
                        failed = Some((origin, Failure::Panic(payload)));
                    }
                }
                if failed.is_none() {
                    let members = self.take_members(child);
                    let Entry {
                        task: removed,
                        waits,
                        ..
                    } = self.remove(child);
                    removed.owner().set(Owner::Dead(ended));
                    let dropped =
                        panic::catch_unwind(AssertUnwindSafe(move || drop((task, removed))));
                    if let Err(payload) = dropped {
                        failed.get_or_insert((Origin::Outside, Failure::Panic(payload)));
                    }
                    todo.push((child, waits));
                    if let Some(members) = members {
                        todo.push((child, Keys::Many(Box::new(members))));
                    }
                }
                match (failed, record.as_deref_mut()) {
                    (None, _) => {}
                    (Some((_, Failure::Panic(payload))), Some(cancelled)) => {
                        cancelled.panic.get_or_insert(payload);
                    }
                    (Some(failed), _) => {
                        let rest = tokens[i + 1..].to_vec();
                        todo.push((parent, Keys::Many(Box::new(rest))));
                        return Some(failed);
                    }
                }
            }
        }
        None
    }

    /// Resumes one coroutine, catching a panic.
    ///
    /// Inlined into the few places that resume: the context it builds then stays in registers.
    #[inline(always)]
    fn resume(&mut self, token: u64, input: Input) -> std::thread::Result<Step<'s>> {
        self.steps += 1;
        let Run {
            slots,
            remote,
            joins,
            spare,
            now,
            ..
        } = self;
        let now = *now;
        let slot = &slots[token as u32 as usize];
        let entry = slot
            .entry
            .as_ref()
            .expect("resumed coroutines are in the table");
        let waker = || {
            let waker = LeafWaker::reuse(slot.waker.take(), remote, token);
            slot.waker.set(Some(waker.clone()));
            Waker::from(waker)
        };
        let mut cx = Cx {
            waker: &waker,
            joins,
            spare,
            remote,
            now,
        };
        panic::catch_unwind(AssertUnwindSafe(|| entry.task.resume(input, &mut cx)))
    }

    /// Resumes one coroutine (named by its token) and files what it asks for.
    fn step(&mut self, token: u64, input: Input) -> Result<(), Failure> {
        let key = token as u32;
        match self.resume(token, input) {
            Ok(Step::Yield(request)) => {
                self.entry(key).line = request.line();
                let mut submission = request.into_submission();
                if submission.is_pause() {
                    self.ready.push_back(token); // a plain pause: to the back of the queue
                    return Ok(());
                }
                self.entry(key).waits = Keys::None;
                let (deadline, cancel) = submission.take_limits();
                if let Some(caught) = submission.take_boundary() {
                    self.open(key, caught);
                }
                let pending = match self.submit(key, submission) {
                    Ok(pending) => pending,
                    Err(refused) => {
                        return self.fail(Origin::Suspended(key), Failure::Error(refused));
                    }
                };
                let entry = self.entry(key);
                entry.pending += pending; // a boundary has counted its members as they joined
                let pending = entry.pending;
                match deadline {
                    _ if pending == 0 => self.ready.push_back(token),
                    Some(deadline) => self.timers.push(deadline, token | DEADLINE),
                    None => {}
                }
                if let Some(cancel) = cancel {
                    self.arm(&cancel, token);
                }
                if !self.fresh_leaves.is_empty() {
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

    /// Whether `key`'s entry is `task` itself (a run id alone may have wrapped around).
    fn holds(&self, key: u32, task: &Rc<dyn Task + 's>) -> bool {
        let entry = self
            .slots
            .get(key as usize)
            .and_then(|slot| slot.entry.as_ref());
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

    /// Files what `waiter` yielded: schedules new coroutines, and returns how many it must wait
    /// for; or the error that refuses what it yielded.
    pub(crate) fn submit(&mut self, waiter: u32, submission: Submission<'s>) -> Result<u32, Error> {
        let (first, rest) = submission.into_parts();
        if !rest.is_empty() {
            let count = usize::from(first.is_some()) + rest.len();
            self.slots.reserve(count.saturating_sub(self.free.len()));
            self.ready.reserve(count);
        }
        let scope = if waiter == ROOT {
            ROOT
        } else {
            self.slots[waiter as usize].scope
        };
        let mut pending = 0;
        let rest = rest.into_iter().map(|s| (s.task, s.wait));
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
        let key = match task.owner().get() {
            Owner::Finished => return Ok(0),
            Owner::Fresh => self.insert(task, scope),
            Owner::Scheduled { run, key }
                if run == self.id && self.holds(key, &task) && self.member_scope(key) == scope =>
            {
                if wait && let Some(cycle) = self.find_cycle(waiter, key) {
                    let error = Error::cancelled_because(format!("cycle detected: {cycle}"));
                    return Err(error);
                }
                key
            }
            owner @ (Owner::Scheduled { .. } | Owner::Dead(_)) => {
                let name = task.site().name;
                let error = Error::cancelled_because(match owner {
                    Owner::Dead(Ended::Failed) => {
                        format!("coroutine `{name}` failed, so it has no output to give")
                    }
                    Owner::Dead(Ended::Cancelled) => format!(
                        "coroutine `{name}` was cancelled when its run (or the isolate it \
                         ran in) failed, so it has no output to give; it is never started again"
                    ),
                    Owner::Dead(Ended::TimedOut) => format!(
                        "coroutine `{name}` was stopped by a timeout, so it has no output to \
                         give; it is never started again"
                    ),
                    Owner::Dead(Ended::Withdrawn) => format!(
                        "coroutine `{name}` was cancelled (by a `CancelHandle` or a `race`), so \
                         it has no output to give; it is never started again"
                    ),
                    _ => format!(
                        "coroutine `{name}` has already started in another loop run and has \
                         not finished there, so it has no output to give; to use one result in \
                         several loops, pass it through `tinyio::copy`"
                    ),
                });
                return Err(error);
            }
        };
        if !wait || !self.entry(key).waiters.push(waiter) {
            return Ok(0); // not waited for, or waited for already (a `Shared` yielded twice)
        }
        if waiter != ROOT {
            let child = self.token(key);
            self.entry(waiter).waits.push(child);
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
        // Until it first suspends, a coroutine is placed at its definition.
        let line = task.site().line;
        let key = match self.free.pop() {
            Some(key) => {
                let slot = &mut self.slots[key as usize];
                slot.generation = slot.generation.wrapping_add(1);
                key
            }
            None => {
                let key = u32::try_from(self.slots.len()).ok().filter(|&k| k != ROOT);
                let key = key.expect("more than 4 billion coroutines at once");
                self.slots.resize_with(key as usize + 1, || Slot {
                    generation: 0,
                    scope: ROOT,
                    entry: None,
                    waker: Cell::new(None),
                });
                let room = self.slots.capacity();
                if self.free.capacity() < room {
                    self.free.reserve_exact(room - self.free.len());
                }
                key
            }
        };
        // Built in place, into a slot known to be empty (and a new slot made by `resize_with`
        // rather than `push`): built first and moved in, the entry and the slot were read back
        // in pieces spanning the writes that made them, which stalls the processor (W3 -4%).
        let slot = &mut self.slots[key as usize];
        assert!(slot.entry.is_none(), "a free slot is empty");
        slot.entry = Some(Entry {
            line,
            task,
            waiters: Waiters::None,
            waits: Keys::None,
            pending: 0,
        });
        slot.scope = scope;
        if scope != ROOT {
            self.join(scope, key);
        }
        let run = self.id;
        let task = &self.entry(key).task;
        task.owner().set(Owner::Scheduled { run, key });
        if task.is_leaf() {
            self.fresh_leaves.push(key);
        } else {
            self.schedule(key);
        }
        key
    }

    /// Inlined: out of line, it costs every coroutine a copy of its entry on the way out.
    #[inline(always)]
    fn remove(&mut self, key: u32) -> Entry<'s> {
        self.free.push(key);
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
        let members = Vec::new();
        let scope = Scope {
            parent,
            caught,
            members,
        };
        self.scopes.insert(key, scope);
    }

    /// `key`, just inserted, joins the scope of the boundary `scope`. Out of line, as `leave`.
    #[inline(never)]
    fn join(&mut self, scope: u32, key: u32) {
        let member = self.token(key);
        let boundary = self.entry(scope);
        boundary.pending += 1;
        let live = boundary.pending as usize;
        let members = &mut self.scopes.get_mut(&scope).expect("open").members;
        members.push(member);
        if members.len() >= 2 * live + 8 {
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
    fn leave(&mut self, key: u32, scope: u32) {
        let scope = if scope == key {
            match self.scopes.remove(&key) {
                Some(closed) => closed.parent,
                None => return,
            }
        } else {
            scope
        };
        if scope == ROOT || !self.scopes.contains_key(&scope) {
            return;
        }
        let boundary = self.entry(scope);
        boundary.pending -= 1;
        if boundary.pending == 0 {
            self.schedule(scope);
        }
    }

    /// The isolated scope `key` belongs to (`ROOT`: none).
    fn member_scope(&self, key: u32) -> u32 {
        let scope = self.slots[key as usize].scope;
        if scope != key {
            return scope;
        }
        self.scopes.get(&key).map_or(ROOT, |scope| scope.parent)
    }

    /// If `key` is a boundary, the members of its scope, taken for a stop to stop them too.
    /// (The boundary, stopped first, has joined the threads its timeouts told to stop.)
    fn take_members(&mut self, key: u32) -> Option<Vec<u64>> {
        if self.slots[key as usize].scope != key {
            return None;
        }
        let scope = self.scopes.get_mut(&key)?;
        Some(std::mem::take(&mut scope.members))
    }

    /// A coroutine finished: wake whoever waited on it.
    fn finish(&mut self, key: u32) -> Result<(), Failure> {
        let Entry { task, waiters, .. } = self.remove(key);
        task.owner().set(Owner::Finished);
        // The last handle may be the table's (a background coroutine): its output drops here.
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(task))) {
            return Err(self.crash(Origin::Outside, Failure::Panic(payload)));
        }
        match waiters {
            Waiters::None => {}
            Waiters::One(waiter) => self.done_waiting(waiter),
            Waiters::Many(many) => {
                for (waiter, ()) in many.iter() {
                    self.done_waiting(waiter);
                }
            }
        }
        Ok(())
    }

    /// One coroutine `waiter` waited on has finished.
    fn done_waiting(&mut self, waiter: u32) {
        if waiter == ROOT {
            self.root_pending -= 1;
            return;
        }
        let waiting = self.entry(waiter);
        waiting.pending -= 1;
        if waiting.pending == 0 {
            self.schedule(waiter);
        }
    }

    /// If `child` already waits, directly or not, on `waiter`, the cycle that waiting on it
    /// would close, by name.
    fn find_cycle(&self, waiter: u32, child: u32) -> Option<String> {
        if waiter == ROOT {
            return None;
        }
        // Walk up from `waiter` through everything that waits on it, looking for `child`.
        let mut came_from = HashMap::from([(waiter, waiter)]);
        let mut todo = VecDeque::from([waiter]);
        while let Some(key) = todo.pop_front() {
            if key == child {
                let name = |key: u32| {
                    format!(
                        "`{}`",
                        self.slots[key as usize]
                            .entry
                            .as_ref()
                            .unwrap()
                            .task
                            .site()
                            .name
                    )
                };
                let mut names = vec![name(waiter)];
                let mut key = child;
                while key != waiter {
                    names.push(name(key));
                    key = came_from[&key];
                }
                names.push(name(waiter));
                return Some(format!("{} (each waits on the next)", names.join(" -> ")));
            }
            let Some(entry) = &self.slots[key as usize].entry else {
                continue;
            };
            for up in entry.waiters.iter() {
                if up != ROOT && !came_from.contains_key(&up) {
                    came_from.insert(up, key);
                    todo.push_back(up);
                }
            }
        }
        None
    }

    /// The frame of `key`, and the frames of the chain of single waiters above it, outermost
    /// first. The chain stops where no one, or more than one, waits, or where the waiter has
    /// left the table (stopped by a timeout, above a coroutine being stopped).
    /// Also gives the keys of that chain.
    fn frames(&self, key: u32) -> (Frame, Vec<Frame>, HashSet<u32>) {
        let frame = |key: u32| {
            let entry = self.slots[key as usize].entry.as_ref().expect("live key");
            entry.task.site().frame(entry.line)
        };
        let (mut outer, mut chain) = (Vec::new(), HashSet::from([key]));
        let mut up = key;
        while let Some(entry) = &self.slots[up as usize].entry {
            match entry.waiters {
                Waiters::One(waiter)
                    if waiter != ROOT && self.slots[waiter as usize].entry.is_some() =>
                {
                    outer.push(frame(waiter));
                    chain.insert(waiter);
                    up = waiter;
                }
                _ => break,
            }
        }
        outer.reverse();
        (frame(key), outer, chain)
    }

    /// Something failed at `origin`. An error inside an isolated scope fails that scope alone
    /// (see [`catch`](Run::catch)); anything else crashes the run.
    fn fail(&mut self, origin: Origin, failure: Failure) -> Result<(), Failure> {
        let scope = match origin {
            Origin::Failed(key) => self.member_scope(key),
            // The scope of what it yielded: its own, if it is a boundary refusing its work.
            Origin::Suspended(key) => self.slots[key as usize].scope,
            Origin::Outside => ROOT,
        };
        match failure {
            Failure::Error(error) if scope != ROOT => self.catch(scope, origin, error, Vec::new()),
            failure => Err(self.crash(origin, failure)),
        }
    }

    /// An error failed the isolated scope of `boundary`. Every member is stopped, as a timeout
    /// stops its work but with a cancellation error; what `todo` holds too (what a timeout in
    /// this scope was stopping when the error came). Threads told to stop are joined (those a
    /// timeout inside stopped earlier, by the boundary: see [`Caught`]). The boundary is then
    /// readied to give the error, grouped with any met while cancelling (as
    /// [`ErrorGroup::Auto`] does); or, if anything panicked meanwhile, the run crashes.
    fn catch(
        &mut self,
        boundary: u32,
        origin: Origin,
        error: Error,
        mut todo: Vec<(u32, Keys<u64>)>,
    ) -> Result<(), Failure> {
        let error = match origin {
            // What the boundary yielded was refused: nothing inside ran, there is no chain.
            Origin::Suspended(key) if key == boundary => error,
            _ => self.trace(origin, error).0,
        };
        let scope = self
            .scopes
            .remove(&boundary)
            .expect("a waiting boundary is open");
        let (mut cancelled, joins) = (Cancelled::default(), self.joins.len());
        todo.push((boundary, Keys::Many(Box::new(scope.members))));
        if let Some(children) = self.take_failed(origin, &mut cancelled) {
            todo.push(children);
        }
        // Caught inside a step that may pause in place: a member being cancelled may not.
        let spare = std::mem::take(&mut self.spare);
        self.stop(&mut todo, Input::Cancel, Some(&mut cancelled));
        self.spare = spare;
        self.join_threads(joins, |_, failure| cancelled.joined(failure));
        self.fresh_leaves.clear();
        if let Some(payload) = cancelled.panic {
            return Err(self.crash(Origin::Outside, Failure::Panic(payload)));
        }
        let errors = std::iter::once(error).chain(cancelled.others);
        scope.caught.error.set(group(errors.collect()));
        // No longer a boundary: it finishes as a member of the scope it is in.
        self.slots[boundary as usize].scope = scope.parent;
        self.entry(boundary).pending = 0;
        self.schedule(boundary);
        Ok(())
    }

    /// The error of a failure at `origin`, traced through the chain of coroutines that waited
    /// on it; and the keys of that chain.
    fn trace(&self, origin: Origin, error: Error) -> (Error, HashSet<u32>) {
        let (Origin::Failed(key) | Origin::Suspended(key)) = origin else {
            return (error, HashSet::new());
        };
        let (frame, outer, chain) = self.frames(key);
        (error.traced(frame, outer), chain)
    }

    /// Takes what failed out of the run and drops it. Gives what the failed coroutine was
    /// waiting on, if it was.
    fn take_failed(
        &mut self,
        origin: Origin,
        cancelled: &mut Cancelled,
    ) -> Option<(u32, Keys<u64>)> {
        let mut children = None;
        let failed = match origin {
            Origin::Failed(key) => {
                let Entry { task, waits, .. } = self.remove(key);
                children = Some((key, waits));
                Some(task)
            }
            Origin::Outside | Origin::Suspended(_) => None,
        };
        if let Some(task) = failed {
            task.owner().set(Owner::Dead(Ended::Failed));
            if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| drop(task))) {
                cancelled.panic.get_or_insert(payload);
            }
        }
        children
    }

    /// Something failed: cancel everything, join the threads, and return the error to raise.
    pub(crate) fn crash(&mut self, origin: Origin, failure: Failure) -> Failure {
        // The coroutines on the error's trace: their cancellations are part of that story, so
        // they are not listed again in a group (as the original's trace stitching does).
        let (failure, on_trace) = match failure {
            Failure::Error(error) => {
                let (error, chain) = self.trace(origin, error);
                (Failure::Error(error), chain)
            }
            panic => (panic, HashSet::new()),
        };
        let mut cancelled = Cancelled::default();
        self.take_failed(origin, &mut cancelled);
        self.cancel_all(&on_trace, &mut cancelled);
        let mut awaiting = std::mem::take(&mut cancelled.awaiting)
            .into_iter()
            .peekable();
        self.join_threads(0, |i, failure| {
            let clean = awaiting.next_if(|(j, _)| *j == i).map(|(_, clean)| clean);
            match failure {
                None => cancelled.clean.extend(clean),
                failure => cancelled.joined(failure),
            }
        });
        self.scopes.clear();
        self.ready.clear();
        self.timers.clear();
        self.fresh_leaves.clear();
        let original = match (failure, cancelled.panic) {
            (Failure::Panic(payload), _) | (_, Some(payload)) => return Failure::Panic(payload),
            (Failure::Error(error), None) => error,
        };
        let mut errors = vec![original];
        match self.error_group {
            ErrorGroup::Never => return Failure::Error(errors.remove(0)),
            ErrorGroup::Auto if cancelled.others.is_empty() => {
                return Failure::Error(errors.remove(0));
            }
            ErrorGroup::Auto => errors.extend(cancelled.others),
            ErrorGroup::Always => {
                errors.extend(cancelled.others);
                errors.extend(cancelled.clean);
            }
        }
        Failure::Error(Error::from_group(errors))
    }

    /// What every suspended coroutine waits on, for the stall report.
    pub(crate) fn stall(&self, idle: Duration) -> Stall {
        let name = |key: u32| {
            self.slots[key as usize]
                .entry
                .as_ref()
                .expect("live key")
                .task
                .site()
                .name
        };
        let entries = (self.slots.iter().enumerate())
            .filter_map(|(key, slot)| Some((key as u32, slot.entry.as_ref()?)));
        let suspended = entries.filter(|(_, e)| e.task.started() && !e.task.is_leaf());
        let coroutines = suspended
            .map(|(key, entry)| Suspended {
                frame: entry.task.site().frame(entry.line),
                // A boundary waits on the members of its scope, but for leaves: each is
                // named by the coroutine that waits on it.
                waits_on: (entry.waits.as_slice().iter())
                    .filter_map(|&t| self.live(t))
                    .chain(
                        (self.scopes.get(&key).map_or(&[][..], |s| &s.members).iter())
                            .filter_map(|&t| self.live(t))
                            .filter(|&member| {
                                !self.slots[member as usize]
                                    .entry
                                    .as_ref()
                                    .expect("live key")
                                    .task
                                    .is_leaf()
                            }),
                    )
                    .map(name)
                    .collect(),
            })
            .collect();
        Stall {
            idle,
            coroutines,
            joining: Vec::new(),
        }
    }

    /// Cancels every coroutine in the table: resumes it with a cancellation, or drops it if it
    /// never started. User code runs here (clean-up, destructors): a panic in it is caught,
    /// and the first one resumes once everything is cancelled.
    fn cancel_all(&mut self, on_trace: &HashSet<u32>, cancelled: &mut Cancelled) {
        for key in 0..self.slots.len() {
            let Some(entry) = self.slots[key].entry.take() else {
                continue;
            };
            let frame = entry.task.site().frame(entry.line);
            let listed = !on_trace.contains(&(key as u32));
            self.cancel_into(entry.task, frame, listed, cancelled);
        }
        self.free.clear();
        self.slots.clear();
    }

    /// Cancels one coroutine taken out of the table and files how it answered. A thread call's
    /// cancellation counts as clean only once its thread, joined, has not failed otherwise.
    fn cancel_into(
        &mut self,
        task: Rc<dyn Task + 's>,
        frame: Frame,
        listed: bool,
        cancelled: &mut Cancelled,
    ) {
        let joins = self.joins.len();
        let outcome = self.cancel(task, frame);
        let join = (self.joins.len() > joins).then_some(joins);
        cancelled.record(outcome, listed, join);
    }

    /// Cancels one coroutine taken out of the table: its clean cancellation, or what it did
    /// instead, or its panic.
    fn cancel(
        &mut self,
        task: Rc<dyn Task + 's>,
        frame: Frame,
    ) -> std::thread::Result<Result<Error, Error>> {
        task.owner().set(Owner::Dead(Ended::Cancelled));
        let remote = &self.remote;
        let waker = || Waker::from(LeafWaker::new(remote, u64::MAX));
        let mut cx = Cx {
            waker: &waker,
            joins: &mut self.joins,
            spare: &mut 0,
            remote,
            now: self.now,
        };
        panic::catch_unwind(AssertUnwindSafe(|| {
            if !task.started() {
                task.discard();
                return Ok(Error::cancelled().traced(frame, Vec::new()));
            }
            let step = task.resume(Input::Cancel, &mut cx);
            let trace = |error: Error| error.traced(frame, Vec::new());
            answer(step, &*task, Error::is_cancelled)
                .map(trace)
                .map_err(trace)
        }))
        .and_then(|outcome| panic::catch_unwind(AssertUnwindSafe(|| drop(task))).map(|()| outcome))
    }
}

/// How a coroutine answered an error delivered at its suspension point (a cancellation, a
/// timeout): `Ok` with the error it propagated if `clean` accepts it, else `Err` with what it
/// did instead. One that yielded again is dropped without running further, with what it
/// yielded.
fn answer<'s>(
    step: Step<'s>,
    task: &(dyn Task + 's),
    clean: impl Fn(&Error) -> bool,
) -> Result<Error, Error> {
    let misbehaved = |what: &str| {
        Error::msg(format_args!(
            "coroutine `{}` did not respond properly to cancellation: it {what} instead of \
             propagating the cancellation error, so it may have leaked resources",
            task.site().name
        ))
    };
    match step {
        Step::Fail(error) if clean(&error) => Ok(error),
        Step::Fail(error) => Err(error),
        Step::Done => Err(misbehaved("returned a value")),
        step @ (Step::Yield(_) | Step::Park(_)) => {
            drop(step.into_submission());
            task.discard();
            Err(misbehaved("yielded again"))
        }
    }
}

#[derive(Default)]
struct Cancelled {
    /// Errors other than clean cancellations.
    others: Vec<Error>,
    /// One cancellation per coroutine that cancelled cleanly.
    clean: Vec<Error>,
    /// Clean cancellations of thread calls, by the index of their join, in order: listed once
    /// the thread has been joined, unless it failed otherwise.
    awaiting: Vec<(usize, Error)>,
    /// The first panic met while cancelling.
    panic: Option<Box<dyn Any + Send>>,
}

impl Cancelled {
    /// Files what a thread told to stop failed with, if anything.
    fn joined(&mut self, failure: Option<Failure>) {
        match failure {
            Some(Failure::Error(error)) => self.others.push(error),
            Some(Failure::Panic(payload)) => {
                self.panic.get_or_insert(payload);
            }
            None => {}
        }
    }

    /// Files how one coroutine took its cancellation; a clean one is listed if `listed`, once
    /// its thread is joined if it pushed the join numbered `join`.
    fn record(
        &mut self,
        outcome: std::thread::Result<Result<Error, Error>>,
        listed: bool,
        join: Option<usize>,
    ) {
        match outcome {
            Ok(Ok(clean)) if listed => match join {
                Some(join) => self.awaiting.push((join, clean)),
                None => self.clean.push(clean),
            },
            Ok(Ok(_)) => {}
            Ok(Err(other)) => self.others.push(other),
            Err(payload) => {
                self.panic.get_or_insert(payload);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_takes_over_the_room_of_the_last_and_gives_it_back() {
        let mut run = Run::new(Arc::new(Remote::new()), ErrorGroup::Auto, Room::default());
        run.slots.reserve(1000);
        run.free.reserve(1000);
        let (buffer, capacity) = (run.slots.as_ptr().addr(), run.slots.capacity());

        let room = run.take_room();
        assert_eq!(
            room.slots.as_ptr().addr(),
            buffer,
            "the table's buffer was not kept"
        );
        assert!(room.slots.capacity() >= capacity && room.free.capacity() >= 1000);

        let next = Run::new(Arc::new(Remote::new()), ErrorGroup::Auto, room);
        assert_eq!(next.slots.as_ptr().addr(), buffer);
        assert!(next.slots.is_empty() && next.slots.capacity() >= capacity);
    }
}
