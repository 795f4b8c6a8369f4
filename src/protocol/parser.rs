//! Client request parser.
