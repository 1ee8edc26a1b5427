//! Synchronisation between coroutines: [`Event`] (also from other threads), [`Semaphore`],
//! [`Lock`] (a semaphore of one, with data), [`Barrier`] (an event per generation).
//!
//! An event's waits and a semaphore's waits queue alike, in a `Line` under a lock: a wait that
//! cannot pass at once takes a ticket with its waker; `set` serves the whole line, a permit given
//! back serves the first; a served wait knows it by its ticket, and one that gives up leaves in
//! O(log n).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use crate::Coro;
use crate::arrivals::{Line, Side, Wait};
use crate::coro::{Coroutine, Cx, Leaf, coroutine};
use crate::error::Error;
use crate::site::{Site, site};
use crate::wake::lock;
use crate::yieldable::suspend;

static EVENT_WAIT: Site = site!("Event::wait");
static ACQUIRE: Site = site!("Semaphore::acquire");
static LOCK: Site = site!("Lock::lock");
static BARRIER: Site = site!("Barrier::wait");

/// A flag that coroutines can wait on, set from a coroutine or from any thread.
///
/// `clear` is not strict: a waiter already woken by `set` stays woken, even if the event is
/// cleared before it runs. Waiters are woken in the order they began to wait.
///
/// ```
/// use tinyio::{Event, Loop};
///
/// #[tinyio::coroutine]
/// fn waiter(event: Event) -> &'static str {
///     yield_!(event.wait());
///     "woken"
/// }
///
/// let event = Event::new();
/// let setter = event.clone();
/// std::thread::spawn(move || setter.set()); // before or during the wait: either way it ends
/// assert_eq!(Loop::new().run(waiter(event.clone())).unwrap(), "woken");
/// assert!(event.is_set());
/// ```
#[derive(Clone, Default)]
pub struct Event(Arc<EventState>);

#[derive(Default)]
struct EventState {
    set: AtomicBool,
    /// The waits in progress, of any loop and of any thread alike. It has no units: `set`
    /// serves everyone in it.
    waits: Mutex<Line>,
    /// The line's last ticket served, stored by `set` under the lock: a woken wait learns it was
    /// served without the lock (two atomic operations fewer per wait).
    served: AtomicU64,
}

impl Event {
    /// A new event, not set.
    ///
    /// ```
    /// let event = tinyio::Event::new();
    /// assert!(!event.is_set());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes every waiter.
    ///
    /// ```
    /// let event = tinyio::Event::new();
    /// event.set();
    /// assert!(event.is_set());
    /// tinyio::Loop::new().run(event.wait()).unwrap(); // finishes at once
    /// ```
    pub fn set(&self) {
        let state = &*self.0;
        // Ordered by the lock: a wait that takes the lock after this `set` sees the flag; one
        // that took it before is on the list that this `set` then takes.
        state.set.store(true, Ordering::Release);
        // Woken under the lock: a wait that leaves meanwhile has left before, or is served.
        let mut waits = lock(&state.waits);
        waits.wake(true, true);
        state.served.store(waits.served, Ordering::Release);
    }

    /// Clears the flag. Waiters already woken stay woken.
    ///
    /// ```
    /// let event = tinyio::Event::new();
    /// event.set();
    /// event.clear();
    /// assert!(!event.is_set());
    /// ```
    pub fn clear(&self) {
        self.0.set.store(false, Ordering::Release);
    }

    /// Whether the flag is set.
    ///
    /// ```
    /// let event = tinyio::Event::new();
    /// assert!(!event.is_set());
    /// event.clone().set(); // clones share the flag
    /// assert!(event.is_set());
    /// ```
    pub fn is_set(&self) -> bool {
        self.0.set.load(Ordering::Acquire)
    }

    /// A coroutine that finishes once the flag is set (at once if it is).
    ///
    /// ```
    /// use tinyio::{Event, Loop};
    ///
    /// #[tinyio::coroutine]
    /// fn setter(event: Event) -> () {
    ///     yield_!();
    ///     event.set();
    /// }
    ///
    /// let event = Event::new();
    /// Loop::new().run((event.wait(), setter(event.clone()))).unwrap();
    /// assert!(event.is_set());
    /// ```
    #[track_caller]
    pub fn wait(&self) -> Coro<()> {
        let wait = EventWait { event: self.clone(), ticket: 0, deadline: None, outcome: |_| () };
        Coroutine::leaf(&EVENT_WAIT, wait)
    }

    /// Like [`wait`](Event::wait), for at most `timeout`: `true` if the flag was set, `false` if
    /// time ran out first.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let event = tinyio::Event::new();
    /// let waited = event.wait_timeout(Duration::from_millis(5));
    /// assert!(!tinyio::Loop::new().run(waited).unwrap());
    /// event.set();
    /// assert!(tinyio::Loop::new().run(event.wait_timeout(Duration::ZERO)).unwrap());
    /// ```
    #[track_caller]
    pub fn wait_timeout(&self, timeout: Duration) -> Coro<bool> {
        let deadline = Some(crate::time::after(timeout));
        let wait = EventWait { event: self.clone(), ticket: 0, deadline, outcome: |set| set };
        Coroutine::leaf(&EVENT_WAIT, wait)
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event").field("set", &self.is_set()).finish_non_exhaustive()
    }
}

/// A wait on an event; `outcome` makes its output of whether the event was set: nothing, or
/// the flag itself (`wait_timeout`).
struct EventWait<F> {
    event: Event,
    /// Its ticket while it waits in the event's line (0: none).
    ticket: u64,
    deadline: Option<Instant>,
    outcome: F,
}

impl<O, F: Fn(bool) -> O> Leaf for EventWait<F> {
    type Output = O;

    fn poll(&mut self, cx: &mut Cx<'_>) -> Poll<Result<O, Error>> {
        let state = &*self.event.0;
        let passed = match self.ticket {
            0 => state.set.load(Ordering::Acquire),
            ticket => ticket <= state.served.load(Ordering::Acquire),
        };
        if passed {
            self.ticket = 0;
            return Poll::Ready(Ok((self.outcome)(true)));
        }
        let mut waits = lock(&state.waits);
        // Read again under the lock, which `set` takes after setting the flag: either this
        // wait sees the flag, or `set` sees this wait. (Waits in line when the flag is read
        // set are served by the `set` that has yet to take the lock.)
        let set = self.ticket == 0 && state.set.load(Ordering::Relaxed);
        if set || waits.take(&mut self.ticket) {
            return Poll::Ready(Ok((self.outcome)(true)));
        }
        // Off the line once time runs out, unless a `set` served it first.
        if self.deadline.is_some_and(|deadline| cx.passed(deadline)) {
            return Poll::Ready(Ok((self.outcome)(waits.leave(std::mem::take(&mut self.ticket)))));
        }
        waits.join(&mut self.ticket, cx.waker);
        Poll::Pending
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

impl<F> Drop for EventWait<F> {
    fn drop(&mut self) {
        if self.ticket != 0 {
            lock(&self.event.0.waits).leave(self.ticket);
        }
    }
}

/// At most `n` coroutines at once past [`acquire`](Semaphore::acquire); the others wait their
/// turn, first come first served. The permit is given back when the guard drops.
///
/// ```
/// use std::cell::Cell;
/// use tinyio::{Loop, Semaphore};
///
/// #[tinyio::coroutine]
/// fn guarded<'a>(semaphore: &'a Semaphore, inside: &'a Cell<usize>, most: &'a Cell<usize>) -> () {
///     let _permit = yield_!(semaphore.acquire());
///     inside.set(inside.get() + 1);
///     most.set(most.get().max(inside.get()));
///     yield_!();
///     inside.set(inside.get() - 1);
/// }
///
/// let (semaphore, inside, most) = (Semaphore::new(2), Cell::new(0), Cell::new(0));
/// let all: Vec<_> = (0..10).map(|_| guarded(&semaphore, &inside, &most)).collect();
/// Loop::new().run(all).unwrap();
/// assert_eq!(most.get(), 2);
/// ```
#[derive(Clone)]
pub struct Semaphore(Arc<Mutex<Line>>);

impl Semaphore {
    /// A semaphore with `permits` permits. Panics if `permits` is zero: nobody could ever pass.
    ///
    /// ```
    /// let semaphore = tinyio::Semaphore::new(2);
    /// assert_eq!(semaphore.available(), 2);
    /// ```
    pub fn new(permits: usize) -> Self {
        assert!(
            permits > 0,
            "`Semaphore::new(0)` would block every `acquire` forever; use at least 1"
        );
        Semaphore(Arc::new(Mutex::new(Line::new(permits))))
    }

    /// A coroutine that finishes with a permit once one is free.
    ///
    /// ```
    /// use tinyio::{Loop, Semaphore};
    ///
    /// let semaphore = Semaphore::new(1);
    /// let permit = Loop::new().run(semaphore.acquire()).unwrap();
    /// assert_eq!(semaphore.available(), 0);
    /// drop(permit);
    /// assert_eq!(semaphore.available(), 1);
    /// ```
    #[track_caller]
    pub fn acquire(&self) -> Coro<SemaphoreGuard> {
        Coroutine::leaf(&ACQUIRE, Wait::new(self.0.clone(), self.clone()))
    }

    /// How many permits are free now.
    ///
    /// ```
    /// assert_eq!(tinyio::Semaphore::new(3).available(), 3);
    /// ```
    pub fn available(&self) -> usize {
        lock(&self.0).free
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("available", &self.available()).finish_non_exhaustive()
    }
}

/// A semaphore is its own wait for a permit: the guard it gives on taking one holds it.
impl Side<Line> for Semaphore {
    type Output = SemaphoreGuard;

    fn line(line: &mut Line) -> &mut Line {
        line
    }

    fn finish(self, line: &mut Line, ticket: &mut u64) -> Result<SemaphoreGuard, Self> {
        if line.take(ticket) { Ok(SemaphoreGuard(self)) } else { Err(self) }
    }
}

/// A permit of a [`Semaphore`], given back on drop.
///
/// ```
/// use tinyio::{Loop, Semaphore};
///
/// let semaphore = Semaphore::new(2);
/// let (a, b) = Loop::new().run((semaphore.acquire(), semaphore.acquire())).unwrap();
/// assert_eq!(semaphore.available(), 0);
/// assert_eq!(format!("{a:?}"), "SemaphoreGuard(Semaphore { available: 0, .. })");
/// drop(a);
/// assert_eq!(semaphore.available(), 1);
/// drop(b);
/// assert_eq!(semaphore.available(), 2);
/// ```
#[derive(Debug)]
#[must_use = "the permit is given back as soon as the guard drops"]
pub struct SemaphoreGuard(Semaphore);

impl Drop for SemaphoreGuard {
    fn drop(&mut self) {
        lock(&self.0.0).release();
    }
}

/// A lock for coroutines: one holder at a time, first come first served. The holder may yield
/// while holding it. A `Lock` is a semaphore of one; `Lock<T>` also guards data, like tokio's
/// `Mutex<T>`: the guard holds the data while the lock is held. Cloning gives another handle to
/// the same lock.
///
/// ```
/// use tinyio::{Lock, Loop};
///
/// #[tinyio::coroutine]
/// fn push(log: Lock<Vec<u32>>, x: u32) -> () {
///     let mut log = yield_!(log.lock());
///     yield_!(); // others run, but cannot take the lock
///     log.push(x);
/// }
///
/// let log = Lock::with_data(Vec::new());
/// Loop::new().run((push(log.clone(), 1), push(log.clone(), 2))).unwrap();
/// assert_eq!(log.into_inner(), Some(vec![1, 2]));
/// ```
pub struct Lock<T = ()> {
    permit: Semaphore,
    /// The data, while nobody holds the lock; the holder's guard has it otherwise.
    data: Arc<Mutex<Option<T>>>,
}

impl Lock<()> {
    /// A lock that guards nothing: a semaphore of one.
    ///
    /// ```
    /// use tinyio::{Lock, Loop};
    ///
    /// let lock = Lock::new();
    /// let guard = Loop::new().run(lock.acquire()).unwrap();
    /// assert!(format!("{lock:?}").contains("locked: true"));
    /// drop(guard); // given back
    /// let _again = Loop::new().run(lock.acquire()).unwrap();
    /// ```
    pub fn new() -> Self {
        Lock::with_data(())
    }
}

impl<T> Lock<T> {
    /// A lock around `data`.
    ///
    /// ```
    /// let lock = tinyio::Lock::with_data(5);
    /// assert_eq!(lock.into_inner(), Some(5));
    /// ```
    pub fn with_data(data: T) -> Self {
        Lock { permit: Semaphore::new(1), data: Arc::new(Mutex::new(Some(data))) }
    }

    /// A coroutine that finishes with the guard once the lock is free. It does not borrow the
    /// lock, so a coroutine may yield it for a lock it owns.
    ///
    /// ```
    /// use tinyio::{Lock, Loop};
    ///
    /// let lock = Lock::with_data(1);
    /// let mut guard = Loop::new().run(lock.lock()).unwrap();
    /// *guard += 1;
    /// drop(guard);
    /// assert_eq!(lock.into_inner(), Some(2));
    /// ```
    #[track_caller]
    pub fn lock<'t>(&self) -> Coroutine<'t, LockGuard<T>>
    where
        T: 't,
    {
        let (permit, home) = (self.permit.clone(), self.data.clone());
        coroutine(&LOCK, move |co| async move {
            let permit = suspend(&co, permit.acquire(), line!()).await?;
            let data = lock(&home).take();
            Ok(LockGuard { data, home, _permit: permit })
        })
    }

    /// The same as [`lock`](Lock::lock), named as on [`Semaphore`].
    ///
    /// ```
    /// let lock = tinyio::Lock::with_data("data");
    /// let guard = tinyio::Loop::new().run(lock.acquire()).unwrap();
    /// assert_eq!(*guard, "data");
    /// ```
    #[track_caller]
    pub fn acquire<'t>(&self) -> Coroutine<'t, LockGuard<T>>
    where
        T: 't,
    {
        self.lock()
    }

    /// The data, if this is the last handle to the lock (`None` otherwise).
    ///
    /// ```
    /// let lock = tinyio::Lock::with_data(3);
    /// let other = lock.clone();
    /// assert_eq!(lock.into_inner(), None); // `other` is another handle
    /// assert_eq!(other.into_inner(), Some(3));
    /// ```
    pub fn into_inner(self) -> Option<T> {
        Arc::into_inner(self.data)?.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T> Clone for Lock<T> {
    fn clone(&self) -> Self {
        Lock { permit: self.permit.clone(), data: self.data.clone() }
    }
}

impl Default for Lock<()> {
    fn default() -> Self {
        Lock::new()
    }
}

impl<T> fmt::Debug for Lock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let locked = self.permit.available() == 0;
        f.debug_struct("Lock").field("locked", &locked).finish_non_exhaustive()
    }
}

/// Holds a [`Lock`] and its data; gives both back on drop.
///
/// ```
/// use tinyio::{Lock, Loop};
///
/// let lock = Lock::with_data(vec![1]);
/// let mut guard = Loop::new().run(lock.lock()).unwrap();
/// guard.push(2); // through `DerefMut`
/// assert_eq!(format!("{guard:?}"), "[1, 2]");
/// drop(guard); // the data goes back into the lock
/// assert_eq!(lock.into_inner(), Some(vec![1, 2]));
/// ```
#[must_use = "the lock is released as soon as the guard drops"]
pub struct LockGuard<T> {
    data: Option<T>,
    /// Where the data goes back to.
    home: Arc<Mutex<Option<T>>>,
    _permit: SemaphoreGuard,
}

impl<T> Drop for LockGuard<T> {
    fn drop(&mut self) {
        // The data goes home before the permit (a field, dropped after this) lets the next in.
        *lock(&self.home) = self.data.take();
    }
}

impl<T> Deref for LockGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.data.as_ref().expect("a guard holds the data")
    }
}

impl<T> DerefMut for LockGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.data.as_mut().expect("a guard holds the data")
    }
}

impl<T: fmt::Debug> fmt::Debug for LockGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Holds coroutines back until `n` of them have arrived; then all of them go on. Each
/// generation of `n` arrivals goes through together; [`wait`](Barrier::wait) gives the arrival
/// index within its generation.
///
/// ```
/// use tinyio::{Barrier, Loop};
///
/// let barrier = Barrier::new(3);
/// let mut indices = Loop::new().run([barrier.wait(), barrier.wait(), barrier.wait()]).unwrap();
/// indices.sort();
/// assert_eq!(indices, [0, 1, 2]);
/// ```
///
/// An arrival counts once made, as in the Python original: a waiter stopped before its
/// generation goes (by a [`timeout`](crate::timeout), say) still counts toward it, and the
/// generation goes when `n` have arrived, whether or not they all still wait.
///
/// ```
/// use std::time::Duration;
/// use tinyio::{Barrier, Loop, timeout};
///
/// let (barrier, lp) = (Barrier::new(2), Loop::new());
/// let alone = lp.run(timeout(barrier.wait(), Duration::from_millis(1))).unwrap();
/// assert_eq!(alone, None); // timed out, but it arrived
/// assert_eq!(lp.run(barrier.wait()).unwrap(), 1); // the second arrival: the barrier opens
/// ```
#[derive(Clone)]
pub struct Barrier(Arc<Mutex<BarrierState>>);

struct BarrierState {
    n: usize,
    arrived: usize,
    released: Event,
}

impl Barrier {
    /// A barrier for `n` coroutines. Panics if `n` is zero.
    ///
    /// ```
    /// let barrier = tinyio::Barrier::new(2);
    /// assert_eq!(format!("{barrier:?}"), "Barrier { n: 2, arrived: 0 }");
    /// ```
    pub fn new(n: usize) -> Self {
        assert!(n > 0, "`Barrier::new(0)` has nobody to wait for; use at least 1");
        Barrier(Arc::new(Mutex::new(BarrierState { n, arrived: 0, released: Event::new() })))
    }

    /// A coroutine that arrives at the barrier, waits for the others, and finishes with its
    /// arrival index, from 0 to `n - 1`.
    ///
    /// ```
    /// let barrier = tinyio::Barrier::new(2);
    /// let lp = tinyio::Loop::new();
    /// let [a, b] = lp.run([barrier.wait(), barrier.wait()]).unwrap();
    /// assert_eq!(a + b, 1); // indices 0 and 1
    /// let [c, d] = lp.run([barrier.wait(), barrier.wait()]).unwrap();
    /// assert_eq!(c + d, 1); // the next generation starts again at 0
    /// ```
    #[track_caller]
    pub fn wait(&self) -> Coro<usize> {
        let barrier = self.clone();
        coroutine(&BARRIER, move |co| async move {
            let (index, released) = {
                let mut state = lock(&barrier.0);
                let arrival = (state.arrived, state.released.clone());
                state.arrived = (arrival.0 + 1) % state.n;
                // The last to arrive lets its generation go; the next waits on a new event.
                if state.arrived == 0 {
                    std::mem::take(&mut state.released).set();
                }
                arrival
            };
            suspend(&co, released.wait(), line!()).await?;
            Ok(index)
        })
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.0);
        f.debug_struct("Barrier").field("n", &state.n).field("arrived", &state.arrived).finish()
    }
}
