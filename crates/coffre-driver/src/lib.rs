//! ATECC608B driver (being written).
#![no_std]
