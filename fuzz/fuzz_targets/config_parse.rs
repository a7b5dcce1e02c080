//! Fuzz target: the mbsyncrc parser on arbitrary bytes must never panic; it either yields a
//! configuration or an error whose every diagnostic names the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailsync::config::{ConfigError, Environment, parse_text};

const FILE: &str = "/fuzz/mbsyncrc";

fuzz_target!(|data: &[u8]| {
    let env = Environment {
        home: "/fuzz-home".to_string(),
        xdg_config_home: None,
        xdg_state_home: None,
    };
    match parse_text(FILE, data, &env) {
        Ok(_) => {}
        Err(ConfigError::Invalid { diagnostics, .. }) => {
            assert!(
                !diagnostics.is_empty(),
                "an invalid config without a diagnostic"
            );
        }
        Err(ConfigError::Open { .. }) => panic!("parse_text never opens a file"),
    }
});
