//! Giving up on work: `cancellable` (on demand) and `race` (when one runner finishes first, it
//! cancels the race's wait on them all). Both are the timed wait of `timeout`: the wrapper's one
//! `yield_!` carries a handle, which the run arms with the wrapper's wake token when it files
//! the yield; `cancel` wakes that token as a passed deadline would, from any thread, and the run
//! stops the work as it does at a deadline.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::Yieldable;
use crate::coro::{Coroutine, coroutine};
use crate::error::Raise;
use crate::site::{Site, site};
use crate::wake::Cancel;
use crate::yieldable::{suspend, suspend_until};

static CANCELLABLE: Site = site!("cancellable");
static RACE: Site = site!("race");

/// Disarms the handle when the wait ends, however it ends (its wrapper dropped included).
struct Disarm(Arc<Cancel>);

impl Drop for Disarm {
    fn drop(&mut self) {
        self.0.disarm();
    }
}

/// Cancels the work of a [`cancellable`] from anywhere: a coroutine of any loop, or any thread.
///
/// ```
/// let (work, handle) = tinyio::cancellable(tinyio::sleep(std::time::Duration::from_secs(60)));
/// let other = handle.clone();
/// std::thread::spawn(move || other.cancel()).join().unwrap();
/// assert!(handle.is_cancelled());
/// assert_eq!(tinyio::Loop::new().run(work).unwrap(), None);
/// ```
#[derive(Clone, Default)]
pub struct CancelHandle(Arc<Cancel>);

impl CancelHandle {
    /// Stops the work, if it has not finished: each coroutine that only the work waits on is
    /// resumed with a cancellation error ([`Error::is_cancelled`](crate::Error::is_cancelled)) at
    /// its `yield_!`, threads it started are told to stop and joined, and the [`cancellable`] gives
    /// `None`. Before the work starts, it never starts; after it finished, or a second time, this
    /// does nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tinyio::{Loop, cancellable, sleep};
    ///
    /// #[tinyio::coroutine]
    /// fn press(handle: tinyio::CancelHandle) -> () {
    ///     yield_!(sleep(Duration::from_millis(5)));
    ///     handle.cancel();
    /// }
    ///
    /// let (work, handle) = cancellable(sleep(Duration::from_secs(60)));
    /// assert_eq!(Loop::new().run((work, press(handle))).unwrap(), (None, ()));
    /// ```
    pub fn cancel(&self) {
        self.0.cancel();
    }

    /// Whether [`cancel`](CancelHandle::cancel) has been called (even if the work had already
    /// finished, and so was not stopped).
    ///
    /// ```
    /// let (work, handle) = tinyio::cancellable(());
    /// assert_eq!(tinyio::Loop::new().run(work).unwrap(), Some(()));
    /// assert!(!handle.is_cancelled());
    /// handle.cancel(); // too late: no effect on the work
    /// assert!(handle.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

impl std::fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelHandle").field("cancelled", &self.is_cancelled()).finish()
    }
}

/// Runs `y` until it finishes, giving `Some(output)`, or until the handle is cancelled, giving
/// `None`. [`CancelHandle::cancel`] works from a coroutine of any loop or from any thread.
///
/// The work is stopped as [`timeout`](crate::timeout) stops it at its deadline (`timeout` is
/// this same wait, ended by a deadline): each coroutine that only `y` was waiting on is resumed
/// with a cancellation error at its suspension point, so its destructors run; a coroutine that
/// someone else also waits on goes on; threads are told to stop and joined before this gives
/// `None`. Nothing else is touched. A stall report shows the waiter as waiting on `cancellable`.
///
/// ```
/// use std::time::Duration;
/// use tinyio::{Loop, cancellable, run_in_thread, sleep, thread};
///
/// #[tinyio::coroutine]
/// fn download() -> &'static str {
///     yield_!(run_in_thread(|| thread::sleep(Duration::from_secs(60))))?;
///     "done"
/// }
///
/// let (work, handle) = cancellable(download());
/// let (quick, _) = cancellable(sleep(Duration::from_millis(1)));
/// std::thread::spawn(move || handle.cancel()); // a user pressed "stop"
/// assert_eq!(Loop::new().run((work, quick)).unwrap(), (None, Some(())));
/// ```
#[track_caller]
pub fn cancellable<'a, Y: Yieldable<Output: 'a> + 'a>(
    y: Y,
) -> (Coroutine<'a, Option<Y::Output>>, CancelHandle) {
    let handle = CancelHandle::default();
    (give_up(&CANCELLABLE, y, None, Some(handle.0.clone()), |output| output), handle)
}

/// The wait of [`timeout`](crate::timeout), [`cancellable`] and [`race`]: `finish` with
/// `Some(output)`, or with `None` once the deadline passed or `cancel` was cancelled.
#[track_caller]
pub(crate) fn give_up<'a, Y: Yieldable<Output: 'a> + 'a, O: 'a>(
    site: &'static Site,
    y: Y,
    deadline: Option<Instant>,
    cancel: Option<Arc<Cancel>>,
    finish: impl FnOnce(Option<Y::Output>) -> O + 'a,
) -> Coroutine<'a, O> {
    coroutine(site, move |co| async move {
        let _disarm = cancel.clone().map(Disarm);
        match suspend_until(&co, y, deadline, cancel, line!()).await {
            Ok(output) => Ok(finish(Some(output))),
            Err(error) if error.is_deadline() => Ok(finish(None)),
            Err(error) => Err(Raise(error)),
        }
    })
}

/// Runs every one of `runners` at once, and gives the output of the first to finish: for a `Vec` or
/// an array, `(index, output)`; for a tuple of 2 to 12, an enum with one variant per position
/// ([`Race2::First`], [`Race2::Second`], ...). The others are cancelled as [`CancelHandle::cancel`]
/// cancels (each coroutine only they waited on resumed with a cancellation error, threads told to
/// stop and joined) before the race gives its winner. If several could finish in the same round,
/// the first of them in order wins, and the others are stopped before they resume: a channel
/// operation that loses has not taken a value. An error in any of them before a winner crashes the
/// loop, as in a gather. A stall report shows the waiter as waiting on `race`.
///
/// # Panics
///
/// If a `Vec` or an array is empty: a race without runners has no winner to give, and an
/// empty list is a bug of the caller rather than something to recover from at run time.
///
/// ```
/// use std::time::Duration;
/// use tinyio::{Loop, Race2, race, sleep};
///
/// #[tinyio::coroutine]
/// fn mirror(name: &'static str, ms: u64) -> &'static str {
///     yield_!(sleep(Duration::from_millis(ms)));
///     name
/// }
///
/// let fastest = race([mirror("slow", 60_000), mirror("fast", 1)]);
/// assert_eq!(Loop::new().run(fastest).unwrap(), (1, "fast")); // the slow one is stopped
///
/// let either = race((mirror("fast", 1), sleep(Duration::from_secs(60))));
/// assert_eq!(Loop::new().run(either).unwrap(), Race2::First("fast"));
/// ```
#[track_caller]
pub fn race<'a, R: Racers<'a>>(runners: R) -> Coroutine<'a, R::Output> {
    runners.race()
}

/// What [`race`] accepts: a `Vec` or an array of yieldables of one type, or a tuple of 2 to 12
/// yieldables of any types.
///
/// ```
/// use tinyio::{Loop, Race3, race};
///
/// #[tinyio::coroutine]
/// fn after(pauses: u32) -> u32 {
///     for _ in 0..pauses {
///         yield_!();
///     }
///     pauses
/// }
///
/// assert_eq!(Loop::new().run(race(vec![after(3), after(1)])).unwrap(), (1, 1));
/// let won = Loop::new().run(race((after(5), (), after(2)))).unwrap();
/// assert_eq!(won, Race3::Second(())); // `()` finishes at once
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be raced",
    label = "not a `Vec`, an array or a tuple of yieldables",
    note = "`tinyio::race` takes a `Vec` or an array of yieldables of one type, or a tuple of 2 to 12 yieldables"
)]
pub trait Racers<'a> {
    /// What the race gives: the winner's output, and which one won.
    type Output;
    /// Builds the race.
    #[doc(hidden)]
    fn race(self) -> Coroutine<'a, Self::Output>;
}

impl<'a, Y: Yieldable<Output: 'a> + 'a> Racers<'a> for Vec<Y> {
    type Output = (usize, Y::Output);

    #[track_caller]
    fn race(self) -> Coroutine<'a, Self::Output> {
        assert!(
            !self.is_empty(),
            "`tinyio::race` needs at least one yieldable: an empty race has no winner"
        );
        let field = Field::new();
        // A loop, not a closure: `#[track_caller]` does not reach into closures.
        let mut runners = Vec::with_capacity(self.len());
        for (index, y) in self.into_iter().enumerate() {
            runners.push(runner(y, &field, move |output| (index, output)));
        }
        field.start(runners)
    }
}

impl<'a, Y: Yieldable<Output: 'a> + 'a, const N: usize> Racers<'a> for [Y; N] {
    type Output = (usize, Y::Output);

    #[track_caller]
    fn race(self) -> Coroutine<'a, Self::Output> {
        Vec::from(self).race()
    }
}

/// What the runners of a race share: the handle of the race's wait on them all, which the
/// first to finish cancels (so that the run stops the others), and that one's output.
struct Field<T> {
    handle: CancelHandle,
    winner: Cell<Option<T>>,
}

impl<'a, T: 'a> Field<T> {
    fn new() -> Rc<Self> {
        Rc::new(Field { handle: CancelHandle::default(), winner: Cell::new(None) })
    }

    /// The race: the wait of a [`cancellable`] on all the runners, which one of them has won
    /// once it ends.
    #[track_caller]
    fn start(self: Rc<Self>, runners: Vec<Coroutine<'a, ()>>) -> Coroutine<'a, T> {
        let cancel = Some(self.handle.0.clone());
        give_up(&RACE, runners, None, cancel, move |_| {
            self.winner.take().expect("a race ends when one of its runners has won")
        })
    }
}

/// One runner of a race: runs `y` and, if it finishes before any other (none has cancelled the
/// race's handle yet), records its output (through `wrap`) and cancels the race's wait.
#[track_caller]
fn runner<'a, Y: Yieldable<Output: 'a> + 'a, T: 'a>(
    y: Y,
    field: &Rc<Field<T>>,
    wrap: impl FnOnce(Y::Output) -> T + 'a,
) -> Coroutine<'a, ()> {
    let field = field.clone();
    coroutine(&RACE, move |co| async move {
        let output = suspend(&co, y, line!()).await.map_err(Raise)?;
        if !field.handle.is_cancelled() {
            field.winner.set(Some(wrap(output)));
            field.handle.cancel();
        }
        Ok(())
    })
}

macro_rules! race_tuple {
    ($race:ident $count:literal [$(($name:ident $variant:ident $nth:literal $index:tt))+]) => {
        #[doc = concat!(
            "The winner of a [`race`] of ", $count, " yieldables of any types: the output of the \
             first to finish, as the variant of its position.\n\n",
            "```\n",
            "use std::time::Duration;\n",
            "use tinyio::{Loop, ", stringify!($race), ", race, sleep};\n\n",
            "let runners = (", $( "sleep(Duration::from_millis(", stringify!($index), ")), ", )+ ");\n",
            "let won = Loop::new().run(race(runners)).unwrap();\n",
            "assert_eq!(won, ", stringify!($race), "::First(())); // the shortest sleep\n",
            "```"
        )]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $race<$($name),+> {
            $(
                #[doc = concat!("The ", $nth, " runner won, with this output.")]
                $variant($name),
            )+
        }

        impl<'a, $($name: Yieldable<Output: 'a> + 'a),+> Racers<'a> for ($($name,)+) {
            type Output = $race<$($name::Output),+>;

            #[track_caller]
            fn race(self) -> Coroutine<'a, Self::Output> {
                let field = Field::new();
                field.clone().start(vec![$(runner(self.$index, &field, $race::$variant)),+])
            }
        }
    };
}

/// [`race_tuple!`] for every tuple of 2 to 12: each item adds one position to the tuple before.
macro_rules! race_tuples {
    ([$($done:tt)+] ($race:ident $count:literal $name:ident $variant:ident $nth:literal $index:tt) $($rest:tt)*) => {
        race_tuple!($race $count [$($done)+ ($name $variant $nth $index)]);
        race_tuples!([$($done)+ ($name $variant $nth $index)] $($rest)*);
    };
    ([$($done:tt)+]) => {};
}

race_tuples!([(A First "first" 0)] (Race2 2 B Second "second" 1) (Race3 3 C Third "third" 2)
    (Race4 4 D Fourth "fourth" 3) (Race5 5 E Fifth "fifth" 4) (Race6 6 F Sixth "sixth" 5)
    (Race7 7 G Seventh "seventh" 6) (Race8 8 H Eighth "eighth" 7) (Race9 9 I Ninth "ninth" 8)
    (Race10 10 J Tenth "tenth" 9) (Race11 11 K Eleventh "eleventh" 10)
    (Race12 12 L Twelfth "twelfth" 11));
