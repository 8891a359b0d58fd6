//! Process metrics (filled in below).
