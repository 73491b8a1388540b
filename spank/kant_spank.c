/*
 * kant_spank.c - SPANK plugin that lets a job say what it is, for the kant scheduler.
 *
 * Options for sbatch, salloc and srun:
 *   --workload=training|inference|batch
 *   --est-runtime=DURATION   (Slurm time: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS)
 *   --service=NAME           (an inference service; implies --workload=inference)
 *   --sla=DURATION           (start-time SLA of an inference service; implies inference)
 *   --checkpoint-interval=DURATION  (how often a training job checkpoints)
 *   (--sla and --checkpoint-interval also take a number with a unit: 60s, 5m, 2h, 1d)
 *
 * Each value is checked in its option callback, so a bad value fails the submission with a
 * message before anything reaches slurmctld. The checked values go to the job's control
 * environment with spank_job_control_setenv (KANT_WORKLOAD, KANT_SERVICE, and in seconds
 * KANT_EST_RUNTIME, KANT_SLA, KANT_CHECKPOINT_INTERVAL); job_submit.lua reads them from the job's spank_job_env and writes the admin-comment
 * tag the engine reads. SPANK cannot change placement, and does not try to.
 *
 * Build with -DKANT_PARSE_ONLY to get only the parsers, without Slurm symbols: the unit tests
 * load that build with ctypes and fuzz it against the Python parser.
 *
 * Adding an option: a KANT_OPT_ value, a table row, a case in kant_option_cb, and a setenv in
 * slurm_spank_init_post_opt.
 */

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define KANT_MAX_DURATION_S (365L * 86400L)
#define KANT_FIELD_DIGITS 8
#define KANT_NAME_MAX 64

/* Return codes of the parsers (0 is success). */
#define KANT_OK 0
#define KANT_EFORMAT -1
#define KANT_EZERO -2
#define KANT_ETOOLONG -3

/*
 * Parse a Slurm time string into seconds. Forms, as Slurm reads them: MM, MM:SS, HH:MM:SS,
 * D-HH, D-HH:MM, D-HH:MM:SS; 1 to 8 ASCII digits per field. Returns KANT_OK and sets *seconds,
 * KANT_EFORMAT for any other text, KANT_EZERO for a zero duration, KANT_ETOOLONG beyond a year.
 * Reads at most one byte past the last field, never past the terminating NUL.
 */
int kant_parse_duration(const char *text, long *seconds)
{
	long fields[4];
	int nfields = 0, ndigits = 0, has_days = 0;
	long total = 0;
	const char *p;

	if (text == NULL || seconds == NULL || *text == '\0')
		return KANT_EFORMAT;
	fields[0] = 0;
	for (p = text;; p++) {
		char c = *p;
		if (c >= '0' && c <= '9') {
			if (++ndigits > KANT_FIELD_DIGITS)
				return KANT_EFORMAT;
			fields[nfields] = fields[nfields] * 10 + (c - '0');
			continue;
		}
		if (ndigits == 0)
			return KANT_EFORMAT; /* empty field, or a separator first */
		nfields++;
		if (c == '\0')
			break;
		if (c == '-') {
			/* Days come first and only once: "D-" then hours. */
			if (nfields != 1 || has_days)
				return KANT_EFORMAT;
			has_days = 1;
		} else if (c != ':') {
			return KANT_EFORMAT;
		}
		if (nfields >= 4)
			return KANT_EFORMAT;
		fields[nfields] = 0;
		ndigits = 0;
	}
	if (has_days) {
		/* D-HH, D-HH:MM, D-HH:MM:SS */
		static const long unit[3] = {3600, 60, 1};
		int i;
		if (nfields < 2)
			return KANT_EFORMAT;
		total = fields[0] * 86400L;
		for (i = 1; i < nfields; i++)
			total += fields[i] * unit[i - 1];
	} else if (nfields == 1) {
		total = fields[0] * 60L;
	} else if (nfields == 2) {
		total = fields[0] * 60L + fields[1];
	} else if (nfields == 3) {
		total = fields[0] * 3600L + fields[1] * 60L + fields[2];
	} else {
		return KANT_EFORMAT;
	}
	if (total <= 0)
		return KANT_EZERO;
	if (total > KANT_MAX_DURATION_S)
		return KANT_ETOOLONG;
	*seconds = total;
	return KANT_OK;
}

/*
 * As kant_parse_duration, and also a count with a unit: 1 to 8 ASCII digits then s, m, h or d
 * (60s, 5m, 2h, 1d), as an SLA is usually written. Same return codes.
 */
int kant_parse_duration_unit(const char *text, long *seconds)
{
	static const char units[] = "smhd";
	static const long factor[] = {1, 60, 3600, 86400};
	long total = 0;
	size_t n = 0;
	const char *u;

	if (text == NULL || seconds == NULL)
		return KANT_EFORMAT;
	while (text[n] >= '0' && text[n] <= '9' && n <= KANT_FIELD_DIGITS)
		n++;
	if (n == 0 || n > KANT_FIELD_DIGITS || text[n] == '\0' || text[n + 1] != '\0' ||
	    (u = strchr(units, text[n])) == NULL)
		return kant_parse_duration(text, seconds);
	for (size_t i = 0; i < n; i++)
		total = total * 10 + (text[i] - '0');
	total *= factor[u - units];
	if (total <= 0)
		return KANT_EZERO;
	if (total > KANT_MAX_DURATION_S)
		return KANT_ETOOLONG;
	*seconds = total;
	return KANT_OK;
}

/* KANT_OK when text is one of the workload classes, else KANT_EFORMAT. */
int kant_check_workload(const char *text)
{
	static const char *const classes[] = {"training", "inference", "batch", NULL};
	int i;

	if (text == NULL)
		return KANT_EFORMAT;
	for (i = 0; classes[i]; i++)
		if (strcmp(text, classes[i]) == 0)
			return KANT_OK;
	return KANT_EFORMAT;
}

/*
 * KANT_OK when text is a service name: 1 to 64 of [A-Za-z0-9._-], starting with a letter or
 * digit (the name lands in a tag whose separators are ';' and '=', so those cannot appear).
 */
int kant_check_service(const char *text)
{
	size_t i;

	if (text == NULL || text[0] == '\0')
		return KANT_EFORMAT;
	for (i = 0; text[i]; i++) {
		unsigned char c = (unsigned char) text[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (i >= KANT_NAME_MAX)
			return KANT_ETOOLONG;
		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return KANT_EFORMAT;
	}
	return KANT_OK;
}

/*
 * A printable, bounded copy of a user's value for an error message: at most 40 characters,
 * anything outside printable ASCII shown as '?', "..." when cut.
 */
void kant_printable(const char *text, char *out, size_t outlen)
{
	size_t i, n = 0, limit;

	if (outlen == 0)
		return;
	if (text == NULL) {
		snprintf(out, outlen, "(none)");
		return;
	}
	limit = outlen - 1 < 43 ? outlen - 1 : 43;
	for (i = 0; text[i] && n < limit; i++) {
		unsigned char c = (unsigned char) text[i];
		if (i == 40 && text[i + 1] != '\0') {
			if (n + 3 <= limit) {
				memcpy(out + n, "...", 3);
				n += 3;
			}
			break;
		}
		out[n++] = (c >= 0x20 && c < 0x7f) ? (char) c : '?';
	}
	out[n] = '\0';
}

#ifndef KANT_PARSE_ONLY

#include <slurm/spank.h>

SPANK_PLUGIN(kant, 1);

enum {
	KANT_OPT_WORKLOAD = 1,
	KANT_OPT_EST_RUNTIME,
	KANT_OPT_SERVICE,
	KANT_OPT_SLA,
	KANT_OPT_CHECKPOINT_INTERVAL
};

static char workload[16];
static char service[KANT_NAME_MAX + 1];
static long est_seconds = -1;
static long sla_seconds = -1;
static long ckpt_seconds = -1;

static int kant_option_cb(int val, const char *optarg, int remote);

static struct spank_option kant_options[] = {
	{"workload", "training|inference|batch",
	 "What the job is, for the kant scheduler: training, inference or batch.", 1,
	 KANT_OPT_WORKLOAD, kant_option_cb},
	{"est-runtime", "DURATION",
	 "Your estimate of the run time (MM, HH:MM:SS, D-HH:MM, ...), for backfill planning.", 1,
	 KANT_OPT_EST_RUNTIME, kant_option_cb},
	{"service", "NAME",
	 "Inference service this job serves (replicas of a service are spread); implies "
	 "--workload=inference.", 1, KANT_OPT_SERVICE, kant_option_cb},
	{"sla", "DURATION",
	 "Start-time SLA of an inference service: the longest it may wait to start (60s, 5m, "
	 "MM:SS, ...); training jobs may be preempted to keep it. Implies --workload=inference.", 1,
	 KANT_OPT_SLA, kant_option_cb},
	{"checkpoint-interval", "DURATION",
	 "How often this training job checkpoints (30m, HH:MM:SS, ...): a preemption picks the job "
	 "losing least work since its last checkpoint.", 1, KANT_OPT_CHECKPOINT_INTERVAL,
	 kant_option_cb},
	SPANK_OPTIONS_TABLE_END
};

/* A duration option's value: 0 and *seconds set, or -1 after a message naming the option. */
static int kant_duration_option(const char *name, const char *optarg, const char *shown,
				long *seconds)
{
	int rc = kant_parse_duration_unit(optarg, seconds);

	if (rc == KANT_EZERO) {
		slurm_error("kant: --%s=%s is zero; expected a duration above 0", name, shown);
		return -1;
	}
	if (rc == KANT_ETOOLONG) {
		slurm_error("kant: --%s=%s is over one year", name, shown);
		return -1;
	}
	if (rc != KANT_OK) {
		slurm_error("kant: --%s=%s is not valid; expected seconds with a unit (60s, 5m, 2h, "
			    "1d) or a Slurm time: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS",
			    name, shown);
		return -1;
	}
	return 0;
}

static int kant_option_cb(int val, const char *optarg, int remote)
{
	char shown[48];
	long seconds = 0;
	int rc;

	(void) remote;
	kant_printable(optarg, shown, sizeof(shown));
	switch (val) {
	case KANT_OPT_WORKLOAD:
		if (kant_check_workload(optarg) != KANT_OK) {
			slurm_error("kant: --workload=%s is not valid; expected training, inference or batch",
				    shown);
			return -1;
		}
		if (service[0] != '\0' && strcmp(optarg, "inference") != 0) {
			slurm_error("kant: --service=%s needs --workload=inference (got --workload=%s)",
				    service, shown);
			return -1;
		}
		if (sla_seconds > 0 && strcmp(optarg, "inference") != 0) {
			slurm_error("kant: --sla is for inference services; it needs "
				    "--workload=inference (got --workload=%s)", shown);
			return -1;
		}
		if (ckpt_seconds > 0 && strcmp(optarg, "inference") == 0) {
			slurm_error("kant: --checkpoint-interval is for training or batch jobs, not "
				    "--workload=inference");
			return -1;
		}
		snprintf(workload, sizeof(workload), "%s", optarg);
		return 0;
	case KANT_OPT_EST_RUNTIME:
		rc = kant_parse_duration(optarg, &seconds);
		if (rc == KANT_EZERO) {
			slurm_error("kant: --est-runtime=%s is zero; expected a duration above 0", shown);
			return -1;
		}
		if (rc == KANT_ETOOLONG) {
			slurm_error("kant: --est-runtime=%s is over one year", shown);
			return -1;
		}
		if (rc != KANT_OK) {
			slurm_error("kant: --est-runtime=%s is not valid; expected a Slurm time: MM, MM:SS, "
				    "HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS", shown);
			return -1;
		}
		est_seconds = seconds;
		return 0;
	case KANT_OPT_SERVICE:
		if (kant_check_service(optarg) != KANT_OK) {
			slurm_error("kant: --service=%s is not valid; expected 1-64 of A-Z a-z 0-9 . _ - "
				    "starting with a letter or digit", shown);
			return -1;
		}
		/* Checked here, not in init_post_opt: sbatch ignores a failure there. */
		if (workload[0] != '\0' && strcmp(workload, "inference") != 0) {
			slurm_error("kant: --service=%s needs --workload=inference (got --workload=%s)",
				    shown, workload);
			return -1;
		}
		if (ckpt_seconds > 0) {
			slurm_error("kant: --service=%s is an inference service; --checkpoint-interval "
				    "is for training or batch jobs", shown);
			return -1;
		}
		snprintf(service, sizeof(service), "%s", optarg);
		return 0;
	case KANT_OPT_SLA:
		if (kant_duration_option("sla", optarg, shown, &seconds) != 0)
			return -1;
		if (workload[0] != '\0' && strcmp(workload, "inference") != 0) {
			slurm_error("kant: --sla=%s is for inference services; it needs "
				    "--workload=inference (got --workload=%s)", shown, workload);
			return -1;
		}
		sla_seconds = seconds;
		return 0;
	case KANT_OPT_CHECKPOINT_INTERVAL:
		if (kant_duration_option("checkpoint-interval", optarg, shown, &seconds) != 0)
			return -1;
		if (strcmp(workload, "inference") == 0 || service[0] != '\0') {
			slurm_error("kant: --checkpoint-interval=%s is for training or batch jobs, not "
				    "inference services", shown);
			return -1;
		}
		ckpt_seconds = seconds;
		return 0;
	default:
		slurm_error("kant: unknown option value %d", val);
		return -1;
	}
}

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();
	int i;

	(void) ac;
	(void) av;
	/* Options exist where users give them (srun, sbatch, salloc) and in slurmstepd, which
	 * receives them from srun; slurmd and prolog/epilog contexts need none. */
	if (ctx != S_CTX_LOCAL && ctx != S_CTX_ALLOCATOR && ctx != S_CTX_REMOTE)
		return 0;
	for (i = 0; kant_options[i].name; i++) {
		if (spank_option_register(sp, &kant_options[i]) != ESPANK_SUCCESS) {
			slurm_error("kant: cannot register --%s", kant_options[i].name);
			return -1;
		}
	}
	return 0;
}

static int kant_setenv(spank_t sp, const char *name, const char *value)
{
	spank_err_t rc = spank_job_control_setenv(sp, name, value, 1);

	if (rc != ESPANK_SUCCESS) {
		slurm_error("kant: cannot pass %s to the job: %s", name, spank_strerror(rc));
		return -1;
	}
	return 0;
}

int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();
	char buf[32];

	(void) ac;
	(void) av;
	/* The job control environment only exists where the job is submitted. */
	if (ctx != S_CTX_LOCAL && ctx != S_CTX_ALLOCATOR)
		return 0;
	/* The option callbacks already refused bad values and a service without inference; a
	 * failure here would not stop sbatch, so job_submit.lua checks the values again. */
	if ((service[0] != '\0' || sla_seconds > 0) && workload[0] == '\0')
		snprintf(workload, sizeof(workload), "inference");
	if (workload[0] != '\0' && kant_setenv(sp, "KANT_WORKLOAD", workload) != 0)
		return -1;
	if (service[0] != '\0' && kant_setenv(sp, "KANT_SERVICE", service) != 0)
		return -1;
	if (est_seconds > 0) {
		snprintf(buf, sizeof(buf), "%ld", est_seconds);
		if (kant_setenv(sp, "KANT_EST_RUNTIME", buf) != 0)
			return -1;
	}
	if (sla_seconds > 0) {
		snprintf(buf, sizeof(buf), "%ld", sla_seconds);
		if (kant_setenv(sp, "KANT_SLA", buf) != 0)
			return -1;
	}
	if (ckpt_seconds > 0) {
		snprintf(buf, sizeof(buf), "%ld", ckpt_seconds);
		if (kant_setenv(sp, "KANT_CHECKPOINT_INTERVAL", buf) != 0)
			return -1;
	}
	return 0;
}

#endif /* KANT_PARSE_ONLY */
