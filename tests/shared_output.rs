//! A shared coroutine's output is cloned by each waiter: a `Clone` that panics, re-enters a
//! loop, or looks at the same shared coroutine, and one shared coroutine waited on many times.

mod common;

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use common::payload_str;
use tinyio::{Loop, Shared};

thread_local! {
    /// How many `Out`s were cloned on this thread.
    static CLONES: Cell<usize> = const { Cell::new(0) };
    /// The clone number that panics, if any.
    static PANIC_AT: Cell<Option<usize>> = const { Cell::new(None) };
    /// A shared coroutine that a clone runs in a loop of its own, once.
    static REENTER: RefCell<Option<Shared<Out>>> = const { RefCell::new(None) };
}

/// An output whose `Clone` counts itself, may panic, and may run a nested loop.
#[derive(Debug, PartialEq)]
struct Out(u32);

impl Clone for Out {
    fn clone(&self) -> Self {
        let n = CLONES.get();
        CLONES.set(n + 1);
        if PANIC_AT.get() == Some(n) {
            panic!("clone {n} panics");
        }
        if let Some(shared) = REENTER.take() {
            // Looks at the very coroutine whose output is being lent, then runs it again in a
            // loop of its own: it is finished, so that loop gives a clone at once.
            assert!(format!("{shared:?}").contains("finished: true"));
            assert_eq!(Loop::new().run(shared).unwrap(), Out(self.0));
        }
        Out(self.0)
    }
}

#[tinyio::coroutine]
fn make(runs: Rc<Cell<usize>>, value: u32) -> Out {
    runs.set(runs.get() + 1);
    yield_!();
    Out(value)
}

#[tinyio::coroutine]
fn wait_on(shared: Shared<Out>) -> Out {
    yield_!(shared)
}

/// A panic in the clone of a shared output comes out of `run` with its payload; the output
/// stays with the shared coroutine, which a later run gives without running it again.
#[test]
fn a_clone_that_panics_comes_out_of_run_and_the_output_stays() {
    CLONES.set(0);
    let runs = Rc::new(Cell::new(0));
    let shared = make(runs.clone(), 7).share();
    PANIC_AT.set(Some(1));
    let waiters: Vec<_> = (0..3).map(|_| wait_on(shared.clone())).collect();
    let payload = catch_unwind(AssertUnwindSafe(|| Loop::new().run(waiters))).unwrap_err();
    assert_eq!(payload_str(&*payload), "clone 1 panics");
    PANIC_AT.set(None);
    assert_eq!(Loop::new().run((shared.clone(), wait_on(shared))).unwrap(), (Out(7), Out(7)));
    assert_eq!(runs.get(), 1, "run once");
}

/// A clone that runs the same shared coroutine in a nested loop while its output is lent.
#[test]
fn a_clone_may_run_the_same_shared_coroutine_in_a_nested_loop() {
    CLONES.set(0);
    let runs = Rc::new(Cell::new(0));
    let shared = make(runs.clone(), 3).share();
    REENTER.set(Some(shared.clone()));
    let outs = Loop::new().run(vec![wait_on(shared.clone()), wait_on(shared)]).unwrap();
    assert_eq!(outs, [Out(3), Out(3)]);
    assert_eq!(runs.get(), 1);
    assert!(REENTER.take().is_none(), "the clone ran the nested loop");
}

/// One shared coroutine gathered a thousand times in one yield, then again in a second loop
/// and a nested one: it runs once, and each waiter gets exactly one clone.
#[test]
fn one_shared_coroutine_gathered_many_times_runs_once_and_is_cloned_once_per_waiter() {
    #[tinyio::coroutine]
    fn gather(shared: Shared<Out>, n: usize) -> Vec<Out> {
        yield_!(vec![shared; n])
    }
    #[tinyio::coroutine]
    fn nested(shared: Shared<Out>) -> (Vec<Out>, Vec<Out>) {
        let inner = Loop::new().run(gather(shared.clone(), 10)).unwrap();
        (yield_!(gather(shared, 10)), inner)
    }
    CLONES.set(0);
    let runs = Rc::new(Cell::new(0));
    let shared = make(runs.clone(), 5).share();
    let outs = Loop::new().run((gather(shared.clone(), 1000), wait_on(shared.clone()))).unwrap();
    assert_eq!((outs.0.len(), &outs.1), (1000, &Out(5)));
    assert!(outs.0.iter().all(|out| *out == Out(5)));
    assert_eq!(CLONES.get(), 1001);
    let (outer, inner) = Loop::new().run(nested(shared)).unwrap();
    assert_eq!((outer.len(), inner.len()), (10, 10));
    assert_eq!(CLONES.get(), 1021);
    assert_eq!(runs.get(), 1);
}

/// A clone that panics as `Loop::run` itself collects a shared output leaves the loop usable.
#[test]
fn a_clone_that_panics_at_the_root_leaves_the_loop_usable() {
    CLONES.set(0);
    let runs = Rc::new(Cell::new(0));
    let shared = make(runs.clone(), 9).share();
    let lp = Loop::new();
    PANIC_AT.set(Some(0));
    let payload = catch_unwind(AssertUnwindSafe(|| lp.run(shared.clone()))).unwrap_err();
    assert_eq!(payload_str(&*payload), "clone 0 panics");
    PANIC_AT.set(None);
    assert_eq!(lp.run(shared).unwrap(), Out(9));
    assert_eq!(runs.get(), 1);
}
