// Helpers shared by the model tests.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "gpucal/model/errors.hpp"

/// Runs `fn`, expects an input_error whose message contains every needle.
template <typename Fn>
void expect_input_error(Fn fn, std::initializer_list<const char*> needles) {
  try {
    fn();
    ADD_FAILURE() << "no input_error thrown";
  } catch (const gpucal::input_error& e) {
    for (const char* n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what() << " lacks " << n;
  }
}
