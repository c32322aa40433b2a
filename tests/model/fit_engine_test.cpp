#include <gtest/gtest.h>

#include "gpucal/model/fit.hpp"
