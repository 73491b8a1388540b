--[[
job_submit.lua for kant-slurm: classify every job for the kant engine.

Where a job's class comes from, first match wins:
  1. the kant SPANK plugin's options (--workload, --service, --est-runtime, --sla,
     --checkpoint-interval), which arrive in the job's spank_job_env as KANT_WORKLOAD,
     KANT_SERVICE, KANT_EST_RUNTIME, KANT_SLA, KANT_CHECKPOINT_INTERVAL (seconds);
  2. a kant tag in the job's comment, as the kant-slurm templates write it
     (--comment="kant:workload=inference;service=chat;est=3600"), for clusters without the plugin;
  3. the site's QOS and partition rules below.
The result is checked and written to the admin comment, which users cannot set themselves:
    kant:workload=inference;service=chat;est=3600;sla=60
    kant:workload=training;est=86400;ckpt=1800
(absent parts left out). sla= (the longest an inference service may wait to start) is for
inference jobs only, ckpt= (how often a job checkpoints) for training and batch jobs; both in
seconds, given as seconds, a Slurm time (MM:SS, HH:MM:SS, ...) or with a unit (60s, 5m, 1h, 1d). The kant snapshot reader classifies jobs from exactly this tag.
A bad value rejects the job with a message the user sees (slurm.log_user) and slurm.ERROR.

Install: copy next to slurm.conf and set JobSubmitPlugins=lua. Slurm 22.05 runs it with Lua 5.1.
--]]

-- Site rules: QOS or partition name -> workload, used when the job says nothing itself.
local QOS_RULES = {
	inference = "inference",
	training = "training",
}
local PARTITION_RULES = {
	infer = "inference",
}

local WORKLOADS = { training = true, inference = true, batch = true }
local TAG_KEYS = { workload = true, service = true, est = true, sla = true, ckpt = true }
-- Option names of the tag keys, for messages.
local OPTION = { workload = "workload", service = "service", est = "est-runtime", sla = "sla", ckpt = "checkpoint-interval" }
local MAX_DURATION_S = 365 * 86400
local SERVICE_MAX = 64

-- Seconds of a Slurm time string (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS), or nil.
-- The same rules as the SPANK plugin and kant_slurm.jobscript.parse_duration.
local function parse_duration(text)
	if type(text) ~= "string" then
		return nil
	end
	-- 60s, 5m, 2h, 1d: the short form --sla=60s takes (not --est-runtime, as in Slurm).
	local amount, unit = string.match(text, "^(%d+)([smhd])$")
	if amount then
		if #amount > 8 then
			return nil
		end
		local total = tonumber(amount) * ({ s = 1, m = 60, h = 3600, d = 86400 })[unit]
		if total <= 0 or total > MAX_DURATION_S then
			return nil
		end
		return total
	end
	local units
	local fields = {}
	local days, rest = string.match(text, "^(%d+)%-(.*)$")
	if days then
		units = { 3600, 60, 1 }
	else
		rest = text
		units = nil
	end
	for field in string.gmatch(rest .. ":", "([^:]*):") do
		if not string.match(field, "^%d+$") or #field > 8 then
			return nil
		end
		fields[#fields + 1] = tonumber(field)
	end
	if #fields < 1 or #fields > 3 or (days and #days > 8) then
		return nil
	end
	local total = 0
	if days then
		total = tonumber(days) * 86400
		for i, v in ipairs(fields) do
			total = total + v * units[i]
		end
	elseif #fields == 1 then
		total = fields[1] * 60
	elseif #fields == 2 then
		total = fields[1] * 60 + fields[2]
	else
		total = fields[1] * 3600 + fields[2] * 60 + fields[3]
	end
	if total <= 0 or total > MAX_DURATION_S then
		return nil
	end
	return total
end

-- A bounded, printable copy of a user's value for a message.
local function shown(value)
	local text = string.gsub(tostring(value), "[^%w%p ]", "?")
	if #text > 40 then
		text = string.sub(text, 1, 40) .. "..."
	end
	return text
end

-- KANT_* values from the SPANK plugin: a table {workload=, service=, est=, sla=, ckpt=}
-- (strings), or {}.
-- spank_job_env holds "NAME=value" strings; Slurm may show them with a SPANK_ prefix.
local function spank_values(job_desc)
	local out = {}
	local env = job_desc.spank_job_env
	if env == nil then
		return out
	end
	local keys = {
		KANT_WORKLOAD = "workload",
		KANT_SERVICE = "service",
		KANT_EST_RUNTIME = "est",
		KANT_SLA = "sla",
		KANT_CHECKPOINT_INTERVAL = "ckpt",
	}
	for _, entry in pairs(env) do
		local name, value = string.match(entry, "^([%w_]+)=(.*)$")
		if name then
			name = string.gsub(name, "^SPANK_", "")
			if keys[name] then
				out[keys[name]] = value
			end
		end
	end
	return out
end

-- A kant tag "kant:k=v;k=v" -> table, or nil when text is not a kant tag, or nil, error.
local function parse_tag(text)
	if type(text) ~= "string" or string.sub(text, 1, 5) ~= "kant:" then
		return nil
	end
	local out = {}
	for part in string.gmatch(string.sub(text, 6), "[^;]+") do
		local key, value = string.match(part, "^([%a_]+)=(.*)$")
		if key == nil then
			return nil, "part " .. shown(part) .. " is not key=value"
		end
		if not TAG_KEYS[key] then
			return nil, "unknown key " .. shown(key) .. " (expected workload, service, est, sla, ckpt)"
		end
		out[key] = value
	end
	return out
end

-- Check the merged values; returns the admin-comment tag, or nil and the message for the user.
local function make_tag(v, origin)
	local parts = {}
	if v.workload == nil or not WORKLOADS[v.workload] then
		return nil, origin .. "workload=" .. shown(v.workload) .. " is not valid; expected training, inference or batch"
	end
	parts[#parts + 1] = "workload=" .. v.workload
	if v.service ~= nil then
		if #v.service > SERVICE_MAX or not string.match(v.service, "^[%w][%w._-]*$") then
			return nil, origin .. "service=" .. shown(v.service) .. " is not valid; expected 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit"
		end
		if v.workload ~= "inference" then
			return nil, origin .. "service=" .. v.service .. " needs workload=inference, not " .. v.workload
		end
		parts[#parts + 1] = "service=" .. v.service
	end
	for _, key in ipairs({ "est", "sla", "ckpt" }) do
		local value = v[key]
		if value ~= nil then
			local n = string.match(value, "^%d+$") and tonumber(value)
			if not n or n <= 0 or n > MAX_DURATION_S then
				return nil, origin .. key .. "=" .. shown(value) .. " is not valid; expected seconds, 1 to " .. MAX_DURATION_S
			end
			if key == "sla" and v.workload ~= "inference" then
				return nil, origin .. "sla=" .. shown(value) .. " is a start-time SLA for inference services; it needs workload=inference, not " .. v.workload
			end
			if key == "ckpt" and v.workload == "inference" then
				return nil, origin .. "ckpt=" .. shown(value) .. " is a checkpoint interval for training or batch jobs, not for workload=inference"
			end
			parts[#parts + 1] = key .. "=" .. string.format("%d", n)
		end
	end
	return "kant:" .. table.concat(parts, ";")
end

-- The class a site rule gives the job (QOS first, then its partitions), or nil.
local function rule_workload(job_desc)
	if job_desc.qos and QOS_RULES[job_desc.qos] then
		return QOS_RULES[job_desc.qos]
	end
	if job_desc.partition then
		for part in string.gmatch(job_desc.partition, "[^,]+") do
			if PARTITION_RULES[part] then
				return PARTITION_RULES[part]
			end
		end
	end
	return nil
end

local function reject(message)
	slurm.log_user("kant: %s", message)
	slurm.log_info("kant: rejected a job: %s", message)
	return slurm.ERROR
end

-- Merge the sources of one job into {workload, service, est, sla, ckpt}; nil, message on a
-- conflict or a duration that is not one.
local function classify(job_desc)
	local spank = spank_values(job_desc)
	local tag, err = parse_tag(job_desc.comment)
	if err then
		return nil, "the kant tag in --comment is not valid: " .. err
	end
	tag = tag or {}
	local v = {}
	for _, key in ipairs({ "workload", "service", "est", "sla", "ckpt" }) do
		if spank[key] ~= nil and tag[key] ~= nil and spank[key] ~= tag[key] then
			return nil, "--" .. OPTION[key] .. " and the --comment tag disagree (" .. shown(spank[key]) .. " vs " .. shown(tag[key]) .. ")"
		end
		v[key] = spank[key] or tag[key]
	end
	-- The comment tag may carry durations as a Slurm time or with a unit too (templates
	-- write seconds).
	for _, key in ipairs({ "est", "sla", "ckpt" }) do
		if v[key] ~= nil and not string.match(v[key], "^%d+$") then
			local seconds = parse_duration(v[key])
			if seconds == nil then
				return nil, key .. "=" .. shown(v[key]) .. " is not valid; expected seconds (60), a Slurm time (MM:SS, HH:MM:SS, D-HH) or a number with s, m, h or d (60s)"
			end
			v[key] = tostring(seconds)
		end
	end
	if v.workload == nil and (v.service ~= nil or v.sla ~= nil) then
		v.workload = "inference" -- a service or an SLA only makes sense for inference
	end
	if v.workload == nil then
		v.workload = rule_workload(job_desc)
	end
	if v.workload == nil and v.est ~= nil then
		v.workload = "batch" -- an estimate alone still helps backfill planning
	end
	if v.workload == nil then
		return {}
	end
	return v
end

function slurm_job_submit(job_desc, part_list, submit_uid)
	local v, err = classify(job_desc)
	if v == nil then
		return reject(err)
	end
	if v.workload == nil then
		return slurm.SUCCESS -- nothing says what it is: the engine's default class applies
	end
	local tag, terr = make_tag(v, "")
	if tag == nil then
		return reject(terr)
	end
	job_desc.admin_comment = tag
	slurm.log_debug("kant: tagged a job of uid %d: %s", submit_uid, tag)
	return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
	-- Only a changed kant tag in the comment needs a look; everything else passes.
	local tag, err = parse_tag(job_desc.comment)
	if err then
		return reject("the kant tag in the new comment is not valid: " .. err)
	end
	if tag == nil then
		return slurm.SUCCESS
	end
	local v, cerr = classify(job_desc)
	if v == nil then
		return reject(cerr)
	end
	local admin, terr = make_tag(v, "")
	if admin == nil then
		return reject(terr)
	end
	job_desc.admin_comment = admin
	return slurm.SUCCESS
end

-- Exposed for tests that load this file outside slurmctld.
kant_job_submit = {
	parse_duration = parse_duration,
	parse_tag = parse_tag,
	make_tag = make_tag,
	classify = classify,
}

slurm.log_info("kant: job_submit.lua loaded")
return slurm.SUCCESS
