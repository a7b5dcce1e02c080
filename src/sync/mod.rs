//! The sync core: mbsync 1.5 semantics between two stores, with the state file and journal.
