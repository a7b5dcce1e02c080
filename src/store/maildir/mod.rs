//! The Maildir store driver.
