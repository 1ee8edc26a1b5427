//! A tester's pass over the shared waiter line, the failure path and the event loop's timer
//! thread: each test tries to make a unit, a wake-up or a trace go missing.

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::ms;
use tinyio::{sleep, to_future};

/// A waker that reports each wake-up on a channel.
struct Tell(mpsc::Sender<()>);

impl Wake for Tell {
    fn wake(self: Arc<Self>) {
        let _ = self.0.send(());
    }
}

/// A `to_future` polled once with one waker, then with another (as `now_or_never` before an
/// `.await`, or a future handed from one task to another, does) must wake the latest waker
/// when its timer is due: the future contract says only the waker of the latest poll counts.
#[test]
fn a_to_future_timer_wakes_the_waker_of_the_latest_poll() {
    let mut future = Box::pin(to_future(sleep(ms(20))));
    let mut first = Context::from_waker(Waker::noop());
    assert!(future.as_mut().poll(&mut first).is_pending(), "the sleep waits");
    let (tell, woken) = mpsc::channel();
    let latest = Waker::from(Arc::new(Tell(tell)));
    assert!(future.as_mut().poll(&mut Context::from_waker(&latest)).is_pending());
    // Generous: the timer is due in 20 ms; only a waker that was never registered misses it.
    let wake = woken.recv_timeout(Duration::from_secs(10));
    assert!(wake.is_ok(), "the timer woke only the waker of the first poll");
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut Context::from_waker(&latest)) {
            break out.unwrap();
        }
        woken.recv().unwrap();
    }
}
