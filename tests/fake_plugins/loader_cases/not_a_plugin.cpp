// A perfectly good shared library that is not an attnlab plugin: no attnlab_* symbols.
extern "C" __attribute__((visibility("default"))) int not_a_plugin_answer() { return 42; }
