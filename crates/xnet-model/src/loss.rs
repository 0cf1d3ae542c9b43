//! Losses: cross-entropy with class weights and ignore label, Dice, focal, L2.
