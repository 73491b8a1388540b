/*
 * fuzz_main.c - run kant_spank.c's option parsers over many inputs, for the sanitizer test.
 *
 * Built with the parsers from the same source (make fuzz, with -fsanitize=address,undefined):
 * reads records "<4-byte little-endian length><bytes>" from stdin until EOF, and prints one line
 * per record: "<duration rc> <seconds> <workload rc> <service rc> <duration-with-unit rc>
 * <its seconds> <printable>". Any memory
 * error aborts the run (non-zero exit), which the test reports.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kant_parse_duration(const char *text, long *seconds);
int kant_parse_duration_unit(const char *text, long *seconds);
int kant_check_workload(const char *text);
int kant_check_service(const char *text);
void kant_printable(const char *text, char *out, size_t outlen);

int main(void)
{
	unsigned char len_bytes[4];

	while (fread(len_bytes, 1, 4, stdin) == 4) {
		size_t len = (size_t) len_bytes[0] | (size_t) len_bytes[1] << 8 |
			     (size_t) len_bytes[2] << 16 | (size_t) len_bytes[3] << 24;
		/* Exactly len bytes plus the NUL: an overread past it is what ASan would catch. */
		char *text = malloc(len + 1);
		char shown[48];
		long seconds = -7, useconds = -7;
		int d, w, s, u;

		if (text == NULL || fread(text, 1, len, stdin) != len) {
			fprintf(stderr, "fuzz_main: short record\n");
			return 2;
		}
		text[len] = '\0';
		d = kant_parse_duration(text, &seconds);
		w = kant_check_workload(text);
		s = kant_check_service(text);
		u = kant_parse_duration_unit(text, &useconds);
		kant_printable(text, shown, sizeof(shown));
		printf("%d %ld %d %d %d %ld %s\n", d, seconds, w, s, u, useconds, shown);
		free(text);
	}
	return 0;
}
