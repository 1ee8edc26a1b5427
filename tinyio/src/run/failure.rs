//! What happens when something fails, or is given up on: a crash cancels the whole run; an
//! error inside an `isolate` fails that scope alone; a timed wait that runs out (or is
//! cancelled on demand) stops only its own work. All three stop coroutines by one walk
//! ([`Run::stop`]): a crash is the run failing as its outermost scope. Also the error's trace
//! (the chain of waiters), cycles, and the stall report.

use super::*;
use std::collections::hash_map::Entry::Vacant;
use std::ops::ControlFlow::{self, Break};
use std::thread;

/// The work list of a walk that stops coroutines (see [`Run::stop`]).
type Todo = Vec<(u32, Keys<u64>)>;

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

impl<'s> Run<'s> {
    /// Joins the threads of leaves stopped by a timeout, once everything else has finished.
    pub(crate) fn finish_threads(&mut self) -> Result<(), Failure> {
        let first = self.joined_failure(0);
        first.map_or(Ok(()), |failure| Err(self.crash(Origin::Outside, failure)))
    }

    /// Waits for the thread calls told to stop (the joins from index `from` on): what each
    /// failed with, in order. A thread that ignores its cancellation blocks here; once the stall
    /// threshold passes, the stall report names the calls still waited for (should it panic,
    /// its panic is one more failure after theirs).
    fn join_threads(&mut self, from: usize) -> Vec<Option<Failure>> {
        let mut joins = self.joins.split_off(from);
        let since = Instant::now();
        let mut report_at =
            self.stall.as_ref().and_then(|(threshold, _)| since.checked_add(*threshold));
        let (mut failures, mut report_panicked) = (Vec::new(), None);
        while let Some(join) = joins.get_mut(failures.len()) {
            match (join.wait)(report_at) {
                Poll::Ready(failure) => failures.push(failure),
                Poll::Pending => {
                    let (_, report) = self.stall.as_ref().expect("a deadline comes with a report");
                    let joining = joins[failures.len()..].iter().map(|join| join.frame).collect();
                    let stall = Stall { idle: since.elapsed(), coroutines: Vec::new(), joining };
                    // A report that panics must not cut the joins short: its panic comes last.
                    report_panicked =
                        panic::catch_unwind(AssertUnwindSafe(|| report(&stall))).err();
                    report_at = None;
                }
            }
        }
        failures.extend(report_panicked.map(|payload| Some(Failure::Panic(payload))));
        failures
    }

    /// Joins the threads told to stop from index `from` on, and gives what they failed with as
    /// the one failure to raise: the first panic if any (a thread's panic is fatal, whatever
    /// failed before it), else the first error; the other errors wait in `met` for the walk
    /// that failure starts.
    fn joined_failure(&mut self, from: usize) -> Option<Failure> {
        let (mut first, mut panic) = (None, None);
        for failure in self.join_threads(from).into_iter().flatten() {
            match failure {
                Failure::Panic(payload) => panic = panic.or(Some(payload)),
                Failure::Error(error) if first.is_none() => first = Some(error),
                Failure::Error(error) => self.met.push(error),
            }
        }
        panic.map(Failure::Panic).or(first.map(Failure::Error))
    }

    /// A timed wait ran out, or was cancelled: stop what `key` waits on (and what only that
    /// waits on, and so on) by resuming it with `input` (a timeout error, or a cancellation),
    /// then resume `key` with a deadline error. A cancellation first joins the threads it told
    /// to stop, so that nothing of the work runs once a `cancellable` or a `race` goes on; a
    /// timeout gives up at its deadline, and leaves them to be joined when the run (or the
    /// isolate it is in) ends.
    ///
    /// Meanwhile the keys freed are held back from reuse: one stopped may still be named as a
    /// waiter (by what someone outside waits on too), or be on the trace of a failure further
    /// down, which a reused slot would give to a stranger (a held leaf being settled). The walk
    /// of a failed scope needs none of this: it reads no waiter, traces nothing, and tells
    /// coroutines apart by token.
    pub(super) fn expire(&mut self, key: u32, input: Input) -> Result<(), Failure> {
        debug_assert!(self.held_back.is_none(), "timed waits end one at a time");
        self.held_back = Some(Vec::new());
        let expired = self.stop_work(key, input);
        self.free.extend(self.held_back.take().expect("held back above"));
        self.gone.clear();
        expired
    }

    fn stop_work(&mut self, key: u32, input: Input) -> Result<(), Failure> {
        // A timed wait holds no leaf: what it yields has a deadline or a handle.
        let waits = std::mem::replace(&mut self.entry(key).waits, Waits::NOTHING);
        let mut todo = vec![(key, waits.into_children())];
        let (joins, scope) = (self.joins.len(), self.slots[key as usize].scope);
        let mut failed = self.stop(&mut todo, input, None);
        if failed.is_none() && input == Input::Cancel {
            // A thread that ends with an error of its own fails the scope of the timed wait.
            let first = self.joined_failure(joins);
            failed = first.map(|failure| (Origin::Outside, failure));
        }
        if scope != ROOT {
            // The threads it told to stop belong to the scope of the timed wait.
            let stopped = self.joins.split_off(joins);
            let caught = &self.scopes.get_mut(&scope).expect("open").caught;
            caught.joins.borrow_mut().extend(stopped);
        }
        if let Some((origin, failure)) = failed {
            // It fails the scope of the timed wait, which holds what was left to stop.
            return self.catch(scope, origin, failure, todo);
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
        todo: &mut Todo,
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
            // Before any of them is stopped: a thread freed by one's stop must not start
            // work another has queued.
            for &child in tokens {
                let Some(child) = self.live(child) else { continue };
                let entry = self.entry_ref(child);
                if record.is_some() || !entry.waiters.others_than(parent) {
                    entry.task.withdraw();
                }
            }
            for (i, &child) in tokens.iter().enumerate() {
                // One that finished meanwhile has left the table.
                let Some(child) = self.live(child) else { continue };
                let entry = self.entry(child);
                // A timeout stops only what nobody else waits on. A failed scope stops every
                // member, whoever waits on it (all of them inside), so it need not look.
                if record.is_none() && entry.waiters.others_than(parent) {
                    entry.waiters.remove(parent);
                    continue; // someone outside still waits on it
                }
                let failed = self.stop_one(child, input, ended, record.as_deref_mut(), todo);
                if let Some(failed) = failed {
                    todo.push((parent, Keys::Many(Box::new(tokens[i + 1..].to_vec()))));
                    return Some(failed);
                }
            }
        }
        None
    }

    /// Stops `child` for [`stop`](Run::stop): resumes it with `input`, then (unless that ends
    /// the walk) removes it from the table, adds what it waited on, and the members of its
    /// scope if it is a boundary, to `todo`, and ends it. What ends the walk, where, if
    /// anything.
    fn stop_one(
        &mut self,
        child: u32,
        input: Input,
        ended: Ended,
        mut record: Option<&mut Cancelled>,
        todo: &mut Todo,
    ) -> Option<(Origin, Failure)> {
        self.settle(child); // its held leaf is stopped after it, as its child
        let entry = self.entry(child);
        let (task, line) = (entry.task.clone(), entry.line);
        let (token, frame) = (self.token(child), task.frame(line));
        let joins = self.joins.len();
        // A coroutine being stopped may not pause in place (see `Cx::spare`).
        let spare = std::mem::take(&mut self.spare);
        // Judged while still linked to its waiter, so that a failure is traced through the
        // chain that was waiting on it.
        let answered = answer(&*task, ended, || self.resume::<false>(token, input));
        self.spare = spare;
        if let Some(cancelled) = &mut record {
            let join = (self.joins.len() > joins).then_some(joins);
            cancelled.record(answered, token, frame, join);
        } else {
            match answered {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Some((Origin::Failed(child), Failure::Error(error))),
                // A coroutine that never started is still in the table, to cancel.
                Err(payload) if task.started() => {
                    return Some((Origin::Failed(child), Failure::Panic(payload)));
                }
                Err(payload) => return Some((Origin::Outside, Failure::Panic(payload))),
            }
            // A walk that records goes on past every failure: none is traced through this link.
            if let Waiters::One(waiter) = self.entry_ref(child).waiters {
                self.gone.insert(child, (frame, waiter));
            }
        }
        let scope =
            self.scopes.get_mut(&child).filter(|_| self.slots[child as usize].scope == child);
        let members = scope.map(|scope| std::mem::take(&mut scope.members));
        let Entry { waits, .. } = self.remove(child);
        let children = waits.into_children();
        if !children.as_slice().is_empty() {
            todo.push((child, children));
        }
        if let Some(members) = members {
            todo.push((child, Keys::Many(Box::new(members))));
        }
        let payload = end(&*task, ended).err()?;
        let Some(cancelled) = record else {
            return Some((Origin::Outside, Failure::Panic(payload)));
        };
        cancelled.panicked(payload);
        None
    }

    /// If `child` already waits, directly or not, on `waiter`, the cycle that waiting on it
    /// would close, by name.
    ///
    /// Two searches take turns, one link each: up from `waiter` through whoever waits on it,
    /// and down from `child` through what it waits on. A cycle is where they meet; none, once
    /// either has run out. So a wait costs the smaller side, not the larger: one coroutine
    /// yielded at every level of a deep chain costs each level what that coroutine waits on,
    /// and one with many children, yielded by many waiters, costs each what is above it.
    pub(super) fn find_cycle(&self, waiter: u32, child: u32) -> Option<String> {
        if waiter == ROOT {
            return None;
        }
        let links = |key: u32| self.slots[key as usize].entry.as_ref();
        let mut up = Search::new(waiter, |key| {
            links(key).into_iter().flat_map(|entry| entry.waiters.iter()).filter(|&k| k != ROOT)
        });
        let mut down = Search::new(child, |key| {
            let children = links(key).into_iter().flat_map(|entry| entry.waits.children());
            children.filter_map(|&token| self.live(token))
        });
        let met = if waiter == child {
            child
        } else {
            loop {
                if let Break(met) = up.step(&down.reached) {
                    break met;
                }
                if let Break(met) = down.step(&up.reached) {
                    break met;
                }
            }?
        };
        // From `child` down to where they met, then up to `waiter`: each waits on the next.
        let (up, down) = (up.reached, down.reached);
        let mut from_child: Vec<u32> =
            std::iter::successors(Some(met), |k| (*k != child).then(|| down[k])).collect();
        from_child.reverse();
        let to_waiter = std::iter::successors(Some(met), |k| (*k != waiter).then(|| up[k])).skip(1);
        let name = |key: u32| format!("`{}`", self.entry_ref(key).task.frame(0).name);
        let names: Vec<_> =
            std::iter::once(waiter).chain(from_child).chain(to_waiter).map(name).collect();
        Some(format!("{} (each waits on the next)", names.join(" -> ")))
    }

    /// Something failed at `origin`. An error inside an isolated scope fails that scope alone
    /// (see [`catch`](Run::catch)); anything else crashes the run.
    pub(super) fn fail(&mut self, origin: Origin, failure: Failure) -> Result<(), Failure> {
        let scope = match origin {
            Origin::Failed(key) => self.member_scope(key),
            // The scope of what it yielded: its own, if it is a boundary refusing its work.
            Origin::Suspended(key) => self.slots[key as usize].scope,
            Origin::Outside => ROOT,
        };
        self.catch(scope, origin, failure, Vec::new())
    }

    /// A failure in the isolated scope of `boundary`: an error fails that scope alone; anything
    /// else, or an error outside every isolate, crashes the run. Every member is stopped, as a
    /// timeout stops its work but with a cancellation error; what `todo` holds too (what a timeout
    /// in this scope was stopping when the error came). Threads told to stop are joined (those a
    /// timeout inside stopped earlier, by the boundary: see [`Caught`]). The boundary is then
    /// readied to give the error, grouped with any met while cancelling (as [`ErrorGroup::Auto`]
    /// does); or, if anything panicked meanwhile, the run crashes.
    fn catch(
        &mut self,
        boundary: u32,
        origin: Origin,
        failure: Failure,
        mut todo: Todo,
    ) -> Result<(), Failure> {
        let error = match failure {
            Failure::Error(error) if boundary != ROOT => error,
            failure => return Err(self.crash(origin, failure)),
        };
        let error = match origin {
            // What the boundary yielded was refused: nothing inside ran, there is no chain.
            Origin::Suspended(key) if key == boundary => error,
            _ => self.trace(origin, error).0,
        };
        let scope = self.scopes.remove(&boundary).expect("a waiting boundary is open");
        todo.push((boundary, Keys::Many(Box::new(scope.members))));
        let cancelled = self.cancel(origin, todo, BTreeSet::new(), self.joins.len());
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

    /// The error of a failure at `origin`, traced through the chain of single waiters above
    /// it, outermost first; and the tokens of that chain. The chain stops where no one, or more
    /// than one, waits.
    fn trace(&self, origin: Origin, error: Error) -> (Error, BTreeSet<u64>) {
        let (Origin::Failed(key) | Origin::Suspended(key)) = origin else {
            return (error, BTreeSet::new());
        };
        // A coroutine's frame, and its waiter if it has one and only one. Above a coroutine
        // being stopped, its waiters may have left the table already.
        let link = |key: u32| match &self.slots[key as usize].entry {
            Some(entry) => {
                let waiter =
                    if let Waiters::One(waiter) = entry.waiters { Some(waiter) } else { None };
                Some((entry.task.frame(entry.line), waiter))
            }
            None => self.gone.get(&key).map(|&(frame, waiter)| (frame, Some(waiter))),
        };
        let (innermost, mut up) = link(key).expect("what failed is in the table");
        let (mut outer, mut chain) = (Vec::new(), BTreeSet::from([self.token(key)]));
        while let Some(waiter) = up.filter(|&waiter| waiter != ROOT)
            && let Some((frame, next)) = link(waiter)
        {
            outer.push(frame);
            chain.insert(self.token(waiter));
            up = next;
        }
        outer.reverse();
        (error.traced(innermost, outer), chain)
    }

    /// Something failed: cancel everything, join the threads, and return the error to raise.
    /// The run fails as the outermost scope would: every coroutine in the table is one of its
    /// members, stopped by the walk that stops a failed isolate's.
    pub(crate) fn crash(&mut self, origin: Origin, failure: Failure) -> Failure {
        // The coroutines on the error's trace: their cancellations are part of that story, so
        // they are not listed again in a group (as the original's trace stitching does).
        let (failure, traced) = match failure {
            Failure::Error(error) => {
                let (error, chain) = self.trace(origin, error);
                (Failure::Error(error), chain)
            }
            panic => (panic, BTreeSet::new()),
        };
        // Every isolated scope fails with the run: its members leave it quietly.
        self.scopes.clear();
        let members = (0..self.slots.len() as u32)
            .filter_map(|key| self.slots[key as usize].entry.as_ref().map(|_| self.token(key)));
        let todo = vec![(ROOT, Keys::Many(Box::new(members.collect())))];
        let cancelled = self.cancel(origin, todo, traced, 0);
        self.ready.clear();
        self.timers.clear();
        let mut errors = match (failure, cancelled.panic) {
            (Failure::Panic(payload), _) | (_, Some(payload)) => return Failure::Panic(payload),
            (Failure::Error(original), None) => vec![original],
        };
        if self.error_group != ErrorGroup::Never {
            errors.extend(cancelled.others);
        }
        if self.error_group != ErrorGroup::Always {
            return Failure::Error(group(errors).expect("the original error"));
        }
        errors.extend(cancelled.clean);
        Failure::Error(Error::from_group(errors))
    }

    /// The walk of a failed scope: takes out what failed at `origin` and drops it, then cancels
    /// what it waited on and what `todo` holds (see [`stop`](Run::stop)), and joins the threads
    /// told to stop from index `joins` on. How each coroutine answered; a thread call's clean
    /// cancellation counts once its thread is joined, unless it failed otherwise, and none of
    /// those on `traced` is listed.
    fn cancel(
        &mut self,
        origin: Origin,
        mut todo: Todo,
        traced: BTreeSet<u64>,
        joins: usize,
    ) -> Cancelled {
        let others = std::mem::take(&mut self.met);
        let mut cancelled = Cancelled { traced, others, ..Cancelled::default() };
        if let Origin::Failed(key) = origin {
            // It was resumed (or is a leaf), so it holds no leaf.
            let Entry { task, waits, .. } = self.remove(key);
            // Its body is dropped here, if it panicked.
            if let Err(payload) = end(&*task, Ended::Failed) {
                cancelled.panicked(payload);
            }
            todo.push((key, waits.into_children()));
        }
        self.stop(&mut todo, Input::Cancel, Some(&mut cancelled));
        self.fresh_leaves.clear();
        let mut awaiting = std::mem::take(&mut cancelled.awaiting).into_iter().peekable();
        for (i, failure) in self.join_threads(joins).into_iter().enumerate() {
            let clean = awaiting.next_if(|(j, _)| *j == joins + i).map(|(_, clean)| clean);
            match failure {
                None => cancelled.clean.extend(clean),
                Some(Failure::Error(error)) => cancelled.others.push(error),
                Some(Failure::Panic(payload)) => cancelled.panicked(payload),
            }
        }
        cancelled
    }

    /// What every suspended coroutine waits on, for the stall report.
    pub(crate) fn stall(&self, idle: Duration) -> Stall {
        let name = |key: u32| self.entry_ref(key).task.frame(0).name;
        let mut coroutines = Vec::new();
        for (key, slot) in self.slots.iter().enumerate() {
            let Some(entry) = slot.entry.as_ref() else { continue };
            if !entry.task.started() || entry.task.is_leaf() {
                continue; // not suspended: it never ran, or it is a leaf, named by its waiter
            }
            let children = entry.waits.children().iter().filter_map(|&t| self.live(t));
            // A boundary waits on the members of its scope, but for leaves that a coroutine
            // waits on: each of those is named by its waiter.
            let members = self.scopes.get(&(key as u32)).map_or(&[][..], |s| &s.members);
            let members = (members.iter().filter_map(|&t| self.live(t))).filter(|&member| {
                let member = self.entry_ref(member);
                !member.task.is_leaf() || matches!(member.waiters, Waiters::None)
            });
            let held =
                if let Waits::Held(leaf) = &entry.waits { Some(leaf.frame(0).name) } else { None };
            let waits_on = children.chain(members).map(name).chain(held).collect();
            coroutines.push(Suspended { frame: entry.task.frame(entry.line), waits_on });
        }
        Stall { idle, coroutines, joining: Vec::new() }
    }
}

/// One side of the search of [`Run::find_cycle`], which follows one link per step.
struct Search<F, I> {
    /// Each coroutine reached, with the one it was reached from.
    reached: HashMap<u32, u32>,
    /// Those reached whose links have not all been followed yet, first reached first, each
    /// with the links left.
    todo: VecDeque<(u32, I)>,
    /// The links of a coroutine: its waiters, or what it waits on.
    links: F,
}

impl<F: Fn(u32) -> I, I: Iterator<Item = u32>> Search<F, I> {
    fn new(start: u32, links: F) -> Self {
        let todo = VecDeque::from([(start, links(start))]);
        Search { reached: HashMap::from([(start, start)]), todo, links }
    }

    /// Follows one link: breaks with a coroutine it reaches that `other` has reached too, or
    /// with `None` once no link is left.
    fn step(&mut self, other: &HashMap<u32, u32>) -> ControlFlow<Option<u32>> {
        while let Some((from, links)) = self.todo.front_mut() {
            let (from, Some(next)) = (*from, links.next()) else {
                self.todo.pop_front();
                continue;
            };
            if let Vacant(vacant) = self.reached.entry(next) {
                vacant.insert(from);
                if other.contains_key(&next) {
                    return Break(Some(next));
                }
                self.todo.push_back((next, (self.links)(next)));
            }
            return ControlFlow::Continue(());
        }
        Break(None)
    }
}

/// Ends `task` as `ended`: user code (its body's destructors) runs here, and a
/// panic in it is caught.
fn end(task: &dyn Task, ended: Ended) -> thread::Result<()> {
    panic::catch_unwind(AssertUnwindSafe(|| task.end(ended)))
}

/// How a coroutine answered the error delivered at its suspension point: `Ok` with the error it
/// propagated if that is the error it was given (or a cancellation: one that never started
/// gives that), else `Err` with what it did instead; or its panic.
type Answer = thread::Result<Result<Error, Error>>;

/// Delivers an error at `task`'s suspension point (a cancellation, a timeout) by `resume`, or
/// ends it if it never started; how it answered. One that yielded again is dropped without
/// running further, with what it yielded.
fn answer<'s>(
    task: &(dyn Task + 's),
    ended: Ended,
    resume: impl FnOnce() -> thread::Result<Step<'s>>,
) -> Answer {
    if !task.started() {
        return end(task, ended).map(|()| Ok(Error::cancelled()));
    }
    let step = resume()?;
    let given =
        |error: &Error| error.is_cancelled() || (ended == Ended::TimedOut && error.is_timeout());
    let misbehaved = |what: &str| {
        Error::msg(format_args!(
            "coroutine `{}` did not respond properly to cancellation: it {what} instead of \
             propagating the cancellation error, so it may have leaked resources",
            task.frame(0).name
        ))
    };
    panic::catch_unwind(AssertUnwindSafe(|| match step {
        Step::Fail(error) if given(&error) => Ok(error),
        Step::Fail(error) => Err(error),
        Step::Done => Err(misbehaved("returned a value")),
        step @ (Step::Yield(_) | Step::Park(_)) => {
            drop(step.into_submission());
            task.end(ended);
            Err(misbehaved("yielded again"))
        }
    }))
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
    /// The coroutines on the error's trace, whose clean cancellations are not listed.
    traced: BTreeSet<u64>,
}

impl Cancelled {
    /// Files how the coroutine of `token`, at `frame`, took its cancellation; a clean one is
    /// listed unless it is on the trace, once its thread is joined if it pushed the join
    /// numbered `join`.
    fn record(&mut self, outcome: Answer, token: u64, frame: Frame, join: Option<usize>) {
        let trace = |error: Error| error.traced(frame, Vec::new());
        match outcome {
            Ok(Ok(clean)) if !self.traced.contains(&token) => match join {
                Some(join) => self.awaiting.push((join, trace(clean))),
                None => self.clean.push(trace(clean)),
            },
            Ok(Ok(_)) => {}
            Ok(Err(other)) => self.others.push(trace(other)),
            Err(payload) => self.panicked(payload),
        }
    }

    fn panicked(&mut self, payload: Box<dyn Any + Send>) {
        self.panic.get_or_insert(payload);
    }
}
