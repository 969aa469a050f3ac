"""Tests of blueprint merging, precedence and the scaled-city generator."""
