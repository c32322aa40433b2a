// Continuous-batching scheduler of the reference engine (to be written).
#pragma once
namespace gpucal::engine {}
