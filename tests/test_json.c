/* JSON parser: accepts valid RFC 8259 documents, rejects malformed ones with a message. */
#include "llama_fp8.c"

static int failures;
#define CHECK(name, cond) do { if (cond) printf("ok %s\n", name); else { printf("FAIL %s\n", name); failures++; } } while (0)

int main(void) {
    const char *good = "{\"a\": [1, -2.5e3, true, false, null, 0.5], \"b\\u00e9\": \"x\\ny\\ud83d\\ude00\", \"c\": {}}";
    json j;
    CHECK("json_parse_valid", json_parse(&j, good, strlen(good)) == 0);
    int a = json_get(&j, 0, "a");
    double d; long long ll;
    CHECK("json_array_len", a >= 0 && j.t[a].n == 6);
    CHECK("json_number", json_number(&j, json_at(&j, a, 1), &d) == 0 && d == -2500.0);
    CHECK("json_integer", json_integer(&j, json_at(&j, a, 0), 0, 10, &ll) == 0 && ll == 1);
    CHECK("json_integer_rejects_fraction", json_integer(&j, json_at(&j, a, 5), -1e9, 1e9, &ll) != 0);
    CHECK("json_literals", j.t[json_at(&j, a, 2)].type == J_TRUE && j.t[json_at(&j, a, 4)].type == J_NULL);
    size_t n; char *s = json_string_dup(&j, json_get(&j, 0, "b\\u00e9"), &n);
    CHECK("json_unescape_surrogates", s && n == 7 && memcmp(s, "x\ny\xF0\x9F\x98\x80", 7) == 0);
    free(s);
    CHECK("json_missing_key", json_get(&j, 0, "zz") == -1);
    CHECK("json_empty_object", j.t[json_get(&j, 0, "c")].type == J_OBJ && j.t[json_get(&j, 0, "c")].n == 0);
    json_free(&j);
    const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "01", "1.", "\"abc", "[1] x", "{\"a\":tru}", "\"\\x\"", "-", "[\"\x01\"]"};
    int rejected = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (json_parse(&j, bad[i], strlen(bad[i])) != 0 && j.err[0]) rejected++;
        json_free(&j);
    }
    CHECK("json_rejects_malformed", rejected == (int)(sizeof bad / sizeof bad[0]));
    char deep[2000]; memset(deep, '[', sizeof deep);
    CHECK("json_depth_limit", json_parse(&j, deep, sizeof deep) != 0); json_free(&j);
    return failures != 0;
}
