//! Run statistics and their console forms (spec sync-semantics §7.2–§7.4): the per-side
//! counters, the summary line, the `-e` exit bits, and the progress line with its erase
//! sequence, and the time-based refresh decision of the progress counter. Pure functions
//! (the clock is passed in); printing belongs to the run loop.

use std::time::{Duration, Instant};

use crate::config::Side;

/// One counter: how much is done, and how much is known to be wanted so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub done: u64,
    pub total: u64,
}

impl Counter {
    fn progress(&self) -> String {
        format!("{}/{}", self.done, self.total)
    }
}

/// The counters of one side: `+` messages stored into it, `*` flag updates, `#` messages
/// trashed from it, `-` messages expunged from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SideStats {
    pub new: Counter,
    pub flags: Counter,
    pub trash: Counter,
    pub expunge: Counter,
}

impl SideStats {
    /// Something was done on this side (any done counter non-zero).
    pub fn any_done(&self) -> bool {
        [self.new, self.flags, self.trash, self.expunge]
            .iter()
            .any(|counter| counter.done != 0)
    }

    fn summary_part(&self) -> String {
        format!(
            "+{} *{} #{} -{}",
            self.new.done, self.flags.done, self.trash.done, self.expunge.done
        )
    }

    fn progress_part(&self) -> String {
        format!(
            "+{} *{} #{} -{}",
            self.new.progress(),
            self.flags.progress(),
            self.trash.progress(),
            self.expunge.progress()
        )
    }
}

/// The counters of both sides, indexed by `Side::index()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub sides: [SideStats; 2],
}

impl Stats {
    pub fn side(&self, side: Side) -> &SideStats {
        &self.sides[side.index()]
    }
    pub fn side_mut(&mut self, side: Side) -> &mut SideStats {
        &mut self.sides[side.index()]
    }
}

/// `Channels: <c>    Boxes: <b>    Far: +n *f #t -e    Near: +n *f #t -e` (spec §7.2).
pub fn summary_line(channels: u32, boxes: u32, stats: &Stats) -> String {
    format!(
        "Channels: {channels}    Boxes: {boxes}    Far: {}    Near: {}",
        stats.sides[0].summary_part(),
        stats.sides[1].summary_part()
    )
}

/// The `-e` additions to the exit code: 32 if anything was done on the far side, 64 for the
/// near side (spec §7.4).
pub fn ext_exit_bits(stats: &Stats) -> i32 {
    let mut bits = 0;
    if stats.sides[0].any_done() {
        bits += 32;
    }
    if stats.sides[1].any_done() {
        bits += 64;
    }
    bits
}

/// Progress of channels and boxes, for the progress line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunProgress {
    pub channels_done: u32,
    pub channels_total: u32,
    pub boxes_done: u32,
    pub boxes_total: u32,
}

/// The terminal width for the progress line: `COLUMNS` if it is a positive number, else 80.
pub fn terminal_columns() -> usize {
    columns_from(std::env::var("COLUMNS").ok().as_deref())
}

fn columns_from(value: Option<&str>) -> usize {
    value
        .and_then(|text| text.trim().parse::<usize>().ok())
        .filter(|&columns| columns > 0)
        .unwrap_or(80)
}

/// Cuts a side part to `width` characters, the last kept one replaced by `~`.
fn cut(part: String, width: usize) -> String {
    if part.len() <= width {
        return part;
    }
    let mut kept: String = part.chars().take(width).collect();
    if kept.pop().is_some() {
        kept.push('~');
    }
    kept
}

/// The progress line (spec §7.3), starting with `\r`:
/// `C: <cd>/<ct>  B: <bd>/<bt>  F: <far>  N: <near>`, each side part cut to
/// (columns − length of the `C: … B: …` part − 10) / 2 characters.
pub fn progress_line(progress: &RunProgress, stats: &Stats, columns: usize) -> String {
    let counts = format!(
        "C: {}/{}  B: {}/{}",
        progress.channels_done, progress.channels_total, progress.boxes_done, progress.boxes_total
    );
    let width = columns.saturating_sub(counts.len() + 10) / 2;
    format!(
        "\r{counts}  F: {}  N: {}",
        cut(stats.sides[0].progress_part(), width),
        cut(stats.sides[1].progress_part(), width)
    )
}

/// The sequence that erases a progress line: `\r`, a space for every character after the
/// line's leading `\r`, and `\r`.
pub fn progress_erase(line: &str) -> String {
    let shown = line.strip_prefix('\r').unwrap_or(line).chars().count();
    format!("\r{}\r", " ".repeat(shown))
}

/// Minimum time between two progress lines while work is being processed (§7.3).
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(300);

/// Decides when the progress line is refreshed: the first time it is asked, then at most
/// once per [`PROGRESS_INTERVAL`]. The caller passes the current time, so the decision can
/// be tested with any clock.
#[derive(Clone, Debug)]
pub struct ProgressMeter {
    columns: usize,
    last_refresh: Option<Instant>,
}

impl ProgressMeter {
    /// A meter rendering lines for a terminal of `columns` columns.
    pub fn new(columns: usize) -> ProgressMeter {
        ProgressMeter {
            columns,
            last_refresh: None,
        }
    }

    /// The progress line to show at `now`, or `None` when the last one is too recent.
    pub fn refresh(&mut self, now: Instant, run: &RunProgress, stats: &Stats) -> Option<String> {
        if let Some(last) = self.last_refresh
            && now.saturating_duration_since(last) < PROGRESS_INTERVAL
        {
            return None;
        }
        self.last_refresh = Some(now);
        Some(progress_line(run, stats, self.columns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_stats() -> Stats {
        let mut stats = Stats::default();
        stats.side_mut(Side::Far).new = Counter { done: 1, total: 1 };
        stats.side_mut(Side::Near).new = Counter { done: 2, total: 3 };
        stats
    }

    #[test]
    fn summary_of_example_1() {
        assert_eq!(
            summary_line(1, 1, &example_stats()),
            "Channels: 1    Boxes: 1    Far: +1 *0 #0 -0    Near: +2 *0 #0 -0"
        );
    }

    #[test]
    fn summary_of_example_4() {
        let mut stats = Stats::default();
        let far = stats.side_mut(Side::Far);
        far.flags.done = 1;
        far.trash.done = 2;
        far.expunge.done = 2;
        let near = stats.side_mut(Side::Near);
        near.trash.done = 1;
        near.expunge.done = 2;
        assert_eq!(
            summary_line(1, 1, &stats),
            "Channels: 1    Boxes: 1    Far: +0 *1 #2 -2    Near: +0 *0 #1 -2"
        );
    }

    #[test]
    fn ext_exit_bits_per_side() {
        assert_eq!(ext_exit_bits(&Stats::default()), 0);
        assert_eq!(ext_exit_bits(&example_stats()), 96);
        let mut stats = Stats::default();
        stats.side_mut(Side::Near).expunge.done = 1;
        assert_eq!(ext_exit_bits(&stats), 64);
        // Totals alone do not count.
        let mut stats = Stats::default();
        stats.side_mut(Side::Far).flags.total = 4;
        assert_eq!(ext_exit_bits(&stats), 0);
        stats.side_mut(Side::Far).trash.done = 1;
        assert_eq!(ext_exit_bits(&stats), 32);
    }

    #[test]
    fn progress_line_fits_wide_terminal() {
        let progress = RunProgress {
            channels_done: 0,
            channels_total: 1,
            boxes_done: 0,
            boxes_total: 1,
        };
        assert_eq!(
            progress_line(&progress, &example_stats(), 80),
            "\rC: 0/1  B: 0/1  F: +1/1 *0/0 #0/0 -0/0  N: +2/3 *0/0 #0/0 -0/0"
        );
    }

    #[test]
    fn progress_line_is_cut_with_tilde() {
        let progress = RunProgress {
            channels_done: 1,
            channels_total: 1,
            boxes_done: 1,
            boxes_total: 1,
        };
        // "C: 1/1  B: 1/1" is 14 characters: width = (50 - 14 - 10) / 2 = 13.
        let line = progress_line(&progress, &example_stats(), 50);
        assert_eq!(line, "\rC: 1/1  B: 1/1  F: +1/1 *0/0 #0~  N: +2/3 *0/0 #0~");
        assert!(line.len() - 1 <= 50);
        // Exactly fitting parts are not cut: "+1/1 *0/0 #0/0 -0/0" is 19 characters.
        let line = progress_line(&progress, &example_stats(), 14 + 10 + 38);
        assert!(line.ends_with("F: +1/1 *0/0 #0/0 -0/0  N: +2/3 *0/0 #0/0 -0/0"));
        // A terminal too narrow leaves empty parts.
        assert_eq!(
            progress_line(&progress, &example_stats(), 20),
            "\rC: 1/1  B: 1/1  F:   N: "
        );
    }

    #[test]
    fn erase_sequence_matches_line_length() {
        let line = "\rC: 0/1  B: 0/1  F: +0/0";
        assert_eq!(progress_erase(line), format!("\r{}\r", " ".repeat(23)));
    }

    #[test]
    fn columns_from_environment_value() {
        assert_eq!(columns_from(None), 80);
        assert_eq!(columns_from(Some("120")), 120);
        assert_eq!(columns_from(Some("0")), 80);
        assert_eq!(columns_from(Some("wide")), 80);
    }

    #[test]
    fn meter_refreshes_first_time_then_every_300_ms() {
        let start = Instant::now();
        let mut meter = ProgressMeter::new(80);
        let run = RunProgress {
            channels_done: 0,
            channels_total: 1,
            boxes_done: 0,
            boxes_total: 1,
        };
        let mut stats = example_stats();
        let first = meter.refresh(start, &run, &stats);
        assert_eq!(
            first.as_deref(),
            Some("\rC: 0/1  B: 0/1  F: +1/1 *0/0 #0/0 -0/0  N: +2/3 *0/0 #0/0 -0/0")
        );
        stats.side_mut(Side::Near).new.done = 3;
        assert_eq!(
            meter.refresh(start + Duration::from_millis(100), &run, &stats),
            None
        );
        assert_eq!(
            meter.refresh(start + Duration::from_millis(299), &run, &stats),
            None
        );
        let later = meter.refresh(start + Duration::from_millis(300), &run, &stats);
        assert_eq!(
            later.as_deref(),
            Some("\rC: 0/1  B: 0/1  F: +1/1 *0/0 #0/0 -0/0  N: +3/3 *0/0 #0/0 -0/0")
        );
        // The interval counts from the last refresh, not from the first one.
        assert_eq!(
            meter.refresh(start + Duration::from_millis(500), &run, &stats),
            None
        );
        assert!(
            meter
                .refresh(start + Duration::from_millis(600), &run, &stats)
                .is_some()
        );
        // A clock that goes backwards does not make a refresh due.
        assert_eq!(meter.refresh(start, &run, &stats), None);
    }
}
