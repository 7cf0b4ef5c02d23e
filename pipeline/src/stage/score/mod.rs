//! Scoring: sentiment and urgency with the reasons that built it.
pub mod sentiment;
