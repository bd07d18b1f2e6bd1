//! One module per example program of `examples/`: each plans the events of
//! one flow (a trade, an order, a batch run, a business date of a feed) into
//! the outbox, drawing its fate from the flow's own random numbers.

pub(crate) mod batch_sequence;
pub(crate) mod file_receipt;
pub(crate) mod grouped_metrics;
pub(crate) mod trade_lifecycle;
