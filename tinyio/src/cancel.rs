//! Giving up on work: `cancellable` (on demand) and `race` (when another finishes first). Both
//! are the timed wait of `timeout`: the wrapper's one `yield_!` carries a handle, which the run
//! arms with the wrapper's wake token when it files the yield; `cancel` wakes that token as a
//! passed deadline would, from any thread, and the run stops the work as it does at a deadline.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::Yieldable;
use crate::coro::{Coroutine, coroutine};
use crate::error::Raise;
use crate::site::{Site, site};
use crate::wake::Cancel;
use crate::yieldable::suspend_until;

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
    /// resumed with a cancellation error ([`Error::is_cancelled`](crate::Error::is_cancelled)) at its `yield_!`, threads it
    /// started are told to stop and joined, and the [`cancellable`] gives `None`. Before the
    /// work starts, it never starts; after it finished, or a second time, this does nothing.
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
        let cancelled = self.is_cancelled();
        f.debug_struct("CancelHandle").field("cancelled", &cancelled).finish()
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
pub fn cancellable<'a, Y>(y: Y) -> (Coroutine<'a, Option<Y::Output>>, CancelHandle)
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    let handle = CancelHandle::default();
    let work = give_up(&CANCELLABLE, y, None, Some(handle.0.clone()));
    (work, handle)
}

/// The wait of [`timeout`](crate::timeout) and [`cancellable`]: `Some(output)`, or `None` once
/// the deadline passed or `cancel` was cancelled.
#[track_caller]
pub(crate) fn give_up<'a, Y>(
    site: &'static Site,
    y: Y,
    deadline: Option<Instant>,
    cancel: Option<Arc<Cancel>>,
) -> Coroutine<'a, Option<Y::Output>>
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    coroutine(site, move |co| async move {
        let _disarm = cancel.clone().map(Disarm);
        match suspend_until(&co, y, deadline, cancel, line!()).await {
            Ok(output) => Ok(Some(output)),
            Err(error) if error.is_deadline() => Ok(None),
            Err(error) => Err(Raise(error)),
        }
    })
}

/// Runs every one of `runners` at once, and gives the output of the first to finish: for a
/// `Vec` or an array, `(index, output)`; for a tuple of 2 to 12, an enum with one variant per
/// position ([`Race2::First`], [`Race2::Second`], ...). The others are cancelled as
/// [`CancelHandle::cancel`] cancels (each coroutine only they waited on resumed with a
/// cancellation error, threads told to stop and joined) before the race gives its winner. If
/// several finish in the same round, the first of them in order wins. An error in any of them
/// before a winner crashes the loop, as in a gather. A stall report shows the waiter as waiting
/// on `race`.
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

impl<'a, Y> Racers<'a> for Vec<Y>
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    type Output = (usize, Y::Output);

    #[track_caller]
    fn race(self) -> Coroutine<'a, Self::Output> {
        assert!(
            !self.is_empty(),
            "`tinyio::race` needs at least one yieldable: an empty race has no winner"
        );
        let count = self.len();
        start(
            count,
            |index, won| (index, won),
            |field| {
                let ys = self.into_iter().enumerate();
                ys.map(|(index, y)| runner(index, y, field.clone(), |out| out)).collect()
            },
        )
    }
}

impl<'a, Y, const N: usize> Racers<'a> for [Y; N]
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
{
    type Output = (usize, Y::Output);

    #[track_caller]
    fn race(self) -> Coroutine<'a, Self::Output> {
        Vec::from(self).race()
    }
}

/// Starts a race of `count` runners, made by `runners` around the field they share; gives what
/// `finish` makes of the winner's index and output.
#[track_caller]
fn start<'a, T: 'a, O: 'a>(
    count: usize,
    finish: fn(usize, T) -> O,
    runners: impl FnOnce(&Rc<Field<T>>) -> Vec<Coroutine<'a, ()>>,
) -> Coroutine<'a, O> {
    let field = Rc::new(Field {
        handles: (0..count).map(|_| CancelHandle::default()).collect(),
        winner: RefCell::new(None),
    });
    let runners = runners(&field);
    coroutine(&RACE, move |co| async move {
        suspend_until(&co, runners, None, None, line!()).await.map_err(Raise)?;
        let winner = field.winner.borrow_mut().take();
        let (index, won) = winner.expect("a race ends when one of its runners has won");
        Ok(finish(index, won))
    })
}

/// What the runners of a race share.
struct Field<T> {
    /// One per runner, in order.
    handles: Vec<CancelHandle>,
    winner: RefCell<Option<(usize, T)>>,
}

/// One runner of a race: the wait of a [`cancellable`] on `y` which, if it finishes first,
/// records its output (through `wrap`) and cancels the others.
#[track_caller]
fn runner<'a, Y, T>(
    index: usize,
    y: Y,
    field: Rc<Field<T>>,
    wrap: impl FnOnce(Y::Output) -> T + 'a,
) -> Coroutine<'a, ()>
where
    Y: Yieldable + 'a,
    Y::Output: 'a,
    T: 'a,
{
    let cancel = field.handles[index].0.clone();
    coroutine(&RACE, move |co| async move {
        let _disarm = Disarm(cancel.clone());
        let output = match suspend_until(&co, y, None, Some(cancel), line!()).await {
            Ok(output) => output,
            Err(error) if error.is_deadline() => return Ok(()), // lost
            Err(error) => return Err(Raise(error)),
        };
        let mut winner = field.winner.borrow_mut();
        if winner.is_none() {
            *winner = Some((index, wrap(output)));
            drop(winner);
            let others = field.handles.iter().enumerate().filter(|&(i, _)| i != index);
            others.for_each(|(_, handle)| handle.cancel());
        }
        Ok(())
    })
}

macro_rules! race_tuple {
    ($race:ident, $count:literal; $($name:ident $variant:ident $nth:literal $index:tt),+; $last:ident) => {
        #[doc = concat!(
            "The winner of a [`race`] of ", $count, " yieldables of any types: the output of the \
             first to finish, as the variant of its position.\n\n",
            "```\n",
            "use tinyio::{Loop, ", stringify!($race), ", race};\n\n",
            "#[tinyio::coroutine]\n",
            "fn after(pauses: u32) -> u32 {\n",
            "    for _ in 0..pauses {\n",
            "        yield_!();\n",
            "    }\n",
            "    pauses\n",
            "}\n\n",
            "let runners = (", $( "after(", $count, " - ", stringify!($index), "), ", )+ ");\n",
            "let won = Loop::new().run(race(runners)).unwrap();\n",
            "assert_eq!(won, ", stringify!($race), "::", stringify!($last), "(1)); // the last pauses least\n",
            "```"
        )]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $race<$($name),+> {
            $(
                #[doc = concat!("The ", $nth, " runner won, with this output.")]
                $variant($name),
            )+
        }

        impl<'a, $($name),+> Racers<'a> for ($($name,)+)
        where
            $($name: Yieldable + 'a, $name::Output: 'a,)+
        {
            type Output = $race<$($name::Output),+>;

            #[track_caller]
            fn race(self) -> Coroutine<'a, Self::Output> {
                start($count, |_, won| won, |field| {
                    vec![$(runner($index, self.$index, field.clone(), $race::$variant),)+]
                })
            }
        }
    };
}

race_tuple!(Race2, 2; A First "first" 0, B Second "second" 1; Second);
race_tuple!(Race3, 3; A First "first" 0, B Second "second" 1, C Third "third" 2; Third);
race_tuple!(Race4, 4; A First "first" 0, B Second "second" 1, C Third "third" 2,
    D Fourth "fourth" 3; Fourth);
race_tuple!(Race5, 5; A First "first" 0, B Second "second" 1, C Third "third" 2,
    D Fourth "fourth" 3, E Fifth "fifth" 4; Fifth);
race_tuple!(Race6, 6; A First "first" 0, B Second "second" 1, C Third "third" 2,
    D Fourth "fourth" 3, E Fifth "fifth" 4, F Sixth "sixth" 5; Sixth);
race_tuple!(Race7, 7; A First "first" 0, B Second "second" 1, C Third "third" 2,
    D Fourth "fourth" 3, E Fifth "fifth" 4, F Sixth "sixth" 5, G Seventh "seventh" 6; Seventh);
race_tuple!(Race8, 8; A First "first" 0, B Second "second" 1, C Third "third" 2,
    D Fourth "fourth" 3, E Fifth "fifth" 4, F Sixth "sixth" 5, G Seventh "seventh" 6,
    H Eighth "eighth" 7; Eighth);
race_tuple!(Race9, 9; A First "first" 0, B Second "second" 1, C Third "third" 2,
    D Fourth "fourth" 3, E Fifth "fifth" 4, F Sixth "sixth" 5, G Seventh "seventh" 6,
    H Eighth "eighth" 7, I Ninth "ninth" 8; Ninth);
race_tuple!(Race10, 10; A First "first" 0, B Second "second" 1, C Third "third" 2,
    D Fourth "fourth" 3, E Fifth "fifth" 4, F Sixth "sixth" 5, G Seventh "seventh" 6,
    H Eighth "eighth" 7, I Ninth "ninth" 8, J Tenth "tenth" 9; Tenth);
race_tuple!(Race11, 11; A First "first" 0, B Second "second" 1, C Third "third" 2,
    D Fourth "fourth" 3, E Fifth "fifth" 4, F Sixth "sixth" 5, G Seventh "seventh" 6,
    H Eighth "eighth" 7, I Ninth "ninth" 8, J Tenth "tenth" 9, K Eleventh "eleventh" 10; Eleventh);
race_tuple!(Race12, 12; A First "first" 0, B Second "second" 1, C Third "third" 2,
    D Fourth "fourth" 3, E Fifth "fifth" 4, F Sixth "sixth" 5, G Seventh "seventh" 6,
    H Eighth "eighth" 7, I Ninth "ninth" 8, J Tenth "tenth" 9, K Eleventh "eleventh" 10,
    L Twelfth "twelfth" 11; Twelfth);
