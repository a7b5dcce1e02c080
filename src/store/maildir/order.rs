//! The order in which a scan visits message files (spec config-cli-stores §4.7): files with a
//! UID by UID, then UID-less files oldest delivery first, judged from the time and sequence
//! parts of the usual Maildir file name shapes. UID-less files get their UIDs in this order.

use std::cmp::Ordering;

/// A process-ID difference larger than this is taken as a wrap-around of process IDs.
const PID_WRAP_DISTANCE: u64 = 20000;

/// Compares the names of two UID-less files, oldest delivery first.
pub fn compare_uidless(a: &str, b: &str) -> Ordering {
    let decided = compare_delivery_parts(a, b).unwrap_or(Ordering::Equal);
    if decided != Ordering::Equal {
        return decided;
    }
    a.as_bytes().cmp(b.as_bytes())
}

/// Sorts with a comparison that need not be a total order (file names from outside can make
/// the wrap-around rule inconsistent): a plain merge sort that never panics.
pub fn sort_tolerant<T>(items: Vec<T>, compare: &impl Fn(&T, &T) -> Ordering) -> Vec<T> {
    if items.len() <= 1 {
        return items;
    }
    let mut left = items;
    let right = left.split_off(left.len() / 2);
    let left = sort_tolerant(left, compare);
    let right = sort_tolerant(right, compare);
    let mut merged = Vec::with_capacity(left.len() + right.len());
    let mut right = right.into_iter().peekable();
    for item in left {
        while let Some(next) = right.peek() {
            if compare(next, &item) == Ordering::Less {
                if let Some(next) = right.next() {
                    merged.push(next);
                }
            } else {
                break;
            }
        }
        merged.push(item);
    }
    merged.extend(right);
    merged
}

/// The delivery-order comparison of §4.7 steps 2 and 3; `None` when the names do not have
/// comparable shapes.
fn compare_delivery_parts(a: &str, b: &str) -> Option<Ordering> {
    let (a_time, a_rest) = a.split_once('.')?;
    let (b_time, b_rest) = b.split_once('.')?;
    let by_time = a_time
        .len()
        .cmp(&b_time.len())
        .then_with(|| a_time.as_bytes().cmp(b_time.as_bytes()));
    if by_time != Ordering::Equal {
        return Some(by_time);
    }
    let a_field = a_rest.split('.').next().unwrap_or(a_rest);
    let b_field = b_rest.split('.').next().unwrap_or(b_rest);
    match (leading_number(a_field), leading_number(b_field)) {
        (Some((a_pid, a_after)), Some((b_pid, b_after))) => {
            let by_pid = compare_pids(a_pid, b_pid);
            if by_pid != Ordering::Equal {
                return Some(by_pid);
            }
            let a_seq = a_after.strip_prefix('_').and_then(leading_number);
            let b_seq = b_after.strip_prefix('_').and_then(leading_number);
            match (a_seq, b_seq) {
                (Some((x, _)), Some((y, _))) => Some(x.cmp(&y)),
                _ => None,
            }
        }
        (None, None) => compare_tagged_numbers(a_field, b_field),
        _ => None,
    }
}

/// Second fields like `M123P456Q7` or `R123#5`: compare `#<n>`, else `M<n>`, else `P<n>`
/// (with wrap-around) then `Q<n>`, whichever both names have.
fn compare_tagged_numbers(a: &str, b: &str) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (tagged_number(a, '#'), tagged_number(b, '#')) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (tagged_number(a, 'M'), tagged_number(b, 'M')) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (tagged_number(a, 'P'), tagged_number(b, 'P')) {
        let by_pid = compare_pids(x, y);
        if by_pid != Ordering::Equal {
            return Some(by_pid);
        }
    }
    if let (Some(x), Some(y)) = (tagged_number(a, 'Q'), tagged_number(b, 'Q')) {
        return Some(x.cmp(&y));
    }
    None
}

/// Compares process IDs; a difference above the wrap distance inverts the order (the
/// larger one was started before the counter wrapped).
fn compare_pids(a: u64, b: u64) -> Ordering {
    if a.abs_diff(b) > PID_WRAP_DISTANCE {
        b.cmp(&a)
    } else {
        a.cmp(&b)
    }
}

/// The number directly following the first occurrence of `tag` that is followed by a digit.
fn tagged_number(field: &str, tag: char) -> Option<u64> {
    field
        .match_indices(tag)
        .find_map(|(index, _)| leading_number(&field[index + tag.len_utf8()..]))
        .map(|(number, _)| number)
}

/// The decimal number at the start of `text` and the rest after it.
fn leading_number(text: &str) -> Option<(u64, &str)> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    if end == 0 {
        return None;
    }
    // Absurdly long digit runs saturate; they still compare sensibly against normal ones.
    let number = text[..end].parse::<u64>().unwrap_or(u64::MAX);
    Some((number, &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let items: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        sort_tolerant(items, &|a: &String, b: &String| compare_uidless(a, b))
    }

    #[test]
    fn time_part_compares_as_number() {
        assert_eq!(compare_uidless("999.1.h", "1000.1.h"), Ordering::Less);
        assert_eq!(compare_uidless("1001.1.h", "1000.9.h"), Ordering::Greater);
    }

    #[test]
    fn pid_and_sequence_decide_within_one_second() {
        assert_eq!(compare_uidless("100.20_3.h", "100.20_12.h"), Ordering::Less);
        assert_eq!(
            compare_uidless("100.21_1.h", "100.20_12.h"),
            Ordering::Greater
        );
        assert_eq!(compare_uidless("100.9.h", "100.10.h"), Ordering::Less);
    }

    #[test]
    fn pid_wrap_around_inverts_order() {
        // 32000 was started before the wrap, 5 after it.
        assert_eq!(
            compare_uidless("100.32000_1.h", "100.5_1.h"),
            Ordering::Less
        );
        assert_eq!(
            compare_uidless("100.M1P32000.h", "100.M1P5.h"),
            Ordering::Less
        );
    }

    #[test]
    fn tagged_fields() {
        assert_eq!(compare_uidless("100.R1#9.h", "100.R0#10.h"), Ordering::Less);
        assert_eq!(
            compare_uidless("100.M20P1.h", "100.M3P9.h"),
            Ordering::Greater
        );
        assert_eq!(compare_uidless("100.P7Q2.h", "100.P7Q10.h"), Ordering::Less);
        assert_eq!(
            compare_uidless("100.P8Q1.h", "100.P7Q10.h"),
            Ordering::Greater
        );
    }

    #[test]
    fn undecided_names_compare_bytewise() {
        assert_eq!(compare_uidless("abc", "abd"), Ordering::Less);
        assert_eq!(compare_uidless("100.x.h", "100.y.h"), Ordering::Less);
        // Different shapes: digits vs tags.
        assert_eq!(compare_uidless("100.5_1.b", "100.M1.a"), Ordering::Less);
        assert_eq!(compare_uidless("same", "same"), Ordering::Equal);
    }

    #[test]
    fn oldest_delivery_first() {
        let result = sorted(&[
            "1700000001.M1P1.myhost",
            "weird-name-no-info",
            "1700000000.5_2.host:2,S",
            "1700000000.5_10.host:2,",
            "999999999.1.old",
        ]);
        assert_eq!(
            result,
            vec![
                "999999999.1.old",
                "1700000000.5_2.host:2,S",
                "1700000000.5_10.host:2,",
                "1700000001.M1P1.myhost",
                "weird-name-no-info",
            ]
        );
    }

    #[test]
    fn tolerant_sort_survives_inconsistent_comparisons() {
        // The wrap-around rule makes these three cyclic; sorting must not panic.
        let result = sorted(&["1.1_1.h", "1.15000_1.h", "1.30000_1.h", "1.2_1.h"]);
        assert_eq!(result.len(), 4);
    }
}
