#pragma once
// Symbol visibility: everything is hidden by default (CMAKE_CXX_VISIBILITY_PRESET hidden);
// what the SDK shares across the plugin boundary is marked ATTNLAB_API.
#define ATTNLAB_API __attribute__((visibility("default")))
