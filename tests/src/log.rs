//! A failed test's host log: dumped to stderr with floods folded, ending
//! with the panic's message (so that the tail of CI's output names the
//! failure).

std::thread_local! {
    /// The message of this thread's panic, for [`dump_log`] to repeat.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs, once, a panic hook that remembers each thread's panic message
/// (and still prints it as usual): a failing test's log dump ends with it,
/// so that the tail of CI's output names the failure.
pub(crate) fn remember_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{at}")));
            previous(info);
        }));
    });
}

/// Prints a failed test's host log to stderr, folding runs of lines that
/// differ only in their timestamp (a flood of one message would otherwise
/// push everything else out of CI's excerpt), then the panic's message.
pub(crate) fn dump_log(log: &str) {
    eprintln!("--- dss log ---");
    eprint!("{}", fold_repeats(log));
    let failed = LAST_PANIC.with(|p| p.borrow().clone());
    eprintln!(
        "--- end of dss log; the test failed: {} ---",
        failed.as_deref().unwrap_or("(see above)")
    );
}

/// `log` with each run of lines equal after their first word (tracing's
/// timestamp) shown once, followed by how many more there were.
fn fold_repeats(log: &str) -> String {
    let body = |l: &str| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string();
    let mut out = String::new();
    let mut lines = log.lines().peekable();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let mut more = 0;
        while lines.peek().is_some_and(|next| body(next) == body(line)) {
            lines.next();
            more += 1;
        }
        if more > 0 {
            out.push_str(&format!("    ... {more} more like this\n"));
        }
    }
    out
}

#[cfg(test)]
mod log_dump_tests {
    use super::fold_repeats;

    #[test]
    fn a_flood_of_one_message_is_folded_and_the_rest_kept() {
        let log = "t1 DEBUG refused\nt2 DEBUG refused\nt3 DEBUG refused\nt4 ERROR failed\nt5 DEBUG refused\n";
        assert_eq!(
            fold_repeats(log),
            "t1 DEBUG refused\n    ... 2 more like this\nt4 ERROR failed\nt5 DEBUG refused\n"
        );
    }
}
