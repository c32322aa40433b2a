#include "gpucal/engine/scheduler.hpp"
