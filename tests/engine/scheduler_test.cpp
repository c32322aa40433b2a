#include <gtest/gtest.h>

#include "gpucal/engine/scheduler.hpp"
