use tinyio::Loop;

struct Counter {
    count: u32,
}

impl Counter {
    #[tinyio::coroutine]
    fn get(&self) -> u32 {
        yield_!();
        self.count
    }

    #[tinyio::coroutine]
    fn bump(&mut self, by: u32) -> &u32 {
        yield_!();
        self.count += by;
        &self.count
    }

    #[tinyio::coroutine]
    fn into_count(self) -> u32 {
        yield_!();
        self.count
    }

    #[tinyio::coroutine]
    fn boxed(mut self: Box<Self>) -> u32 {
        yield_!();
        self.count += 1;
        self.count
    }

    #[tinyio::coroutine]
    fn new(count: u32) -> Self {
        yield_!();
        Counter { count }
    }
}

trait Source {
    #[tinyio::coroutine]
    fn value(&self) -> u32 {
        yield_!();
        7
    }
}

impl Source for Counter {}

fn main() {
    let lp = Loop::new();
    let mut counter = lp.run(Counter::new(1)).unwrap();
    assert_eq!(lp.run(counter.get()).unwrap(), 1);
    assert_eq!(*lp.run(counter.bump(2)).unwrap(), 3);
    assert_eq!(lp.run(counter.value()).unwrap(), 7);
    assert_eq!(lp.run(Box::new(Counter { count: 4 }).boxed()).unwrap(), 5);
    assert_eq!(lp.run(counter.into_count()).unwrap(), 3);
}
