function run_classifier(bc_matlab_dir, work_dir)
% Octave driver for tests/matlab/build_matlab_cases.py (our code, not Bombcell's).
%
% Builds a Bombcell `param` with Bombcell's own bc.qm.qualityParamValues, applies
% the case's edits, then runs Bombcell's own bc.qm.getQualityUnitType twice on the
% metrics in work_dir/qmetric.csv:
%   * on a table (our mtable shim): what MATLAB does in saveQMetrics.m and after
%     loadSavedMetrics.m (parquetread returns a table) -- the labels MATLAB saves;
%   * on a struct of column vectors: what a hand call on a struct gives.
% Writes work_dir/param_saved.tsv (the param as saveQMetrics would save it) and
% work_dir/labels.tsv. cluster_bc_unitType.tsv, if the param asks for it, is written
% by getQualityUnitType itself into work_dir/ks_files (the table run only).
here = fileparts(mfilename('fullpath'));
addpath(fullfile(here, 'shims'));
addpath(bc_matlab_dir);
fprintf('run_classifier: using %s\n', which('bc.qm.getQualityUnitType'));

spec = read_spec(fullfile(work_dir, 'spec.tsv'));
a = spec.qpv;
param = bc.qm.qualityParamValues([], a.rawFile, a.ephysKilosortPath, a.gain_to_uV, a.kilosortVersion);
param = apply_ops(param, spec.ops);

% saveQMetrics.m replaces an empty or missing ephysKilosortPath / gain_to_uV by 'NaN'
% before it saves the param and before it calls getQualityUnitType.
if ~isfield(param, 'ephysKilosortPath') || isempty(param.ephysKilosortPath)
  param.ephysKilosortPath = 'NaN';
end
if ~isfield(param, 'gain_to_uV') || isempty(param.gain_to_uV)
  param.gain_to_uV = 'NaN';
end
dump_param(param, fullfile(work_dir, 'param_saved.tsv'));

% What the classifier works with after its own clean-up, for the coverage report:
% the param after bc.qm.checkParameterFields (back-fill + renames) and the
% metrics after bc.qm.prettify_names (renames + recomputed ratios).
dump_param(bc.qm.checkParameterFields(param), fullfile(work_dir, 'param_used.tsv'));
if ~exist(fullfile(work_dir, 'qmetric.csv'), 'file')
  return  % first pass: the builder only wanted the param
end
S = read_qmetric(fullfile(work_dir, 'qmetric.csv'));
[S_used, ~] = bc.qm.prettify_names(S, []);
write_struct_csv(S_used, fullfile(work_dir, 'qmetric_used.csv'));

% Table run (the oracle). getQualityUnitType writes cluster_bc_unitType.tsv into
% param.ephysKilosortPath; point that at our ks_files folder instead of the
% (fictitious) Kilosort path recorded in the saved param.
ks_dir = fullfile(work_dir, 'ks_files');
if ~exist(ks_dir, 'dir')
  mkdir(ks_dir);
end
param_run = param;
param_run.ephysKilosortPath = ks_dir;
[ut_t, uts_t] = bc.qm.getQualityUnitType(param_run, mtable(S), ks_dir);

% Struct run, for comparison; its TSV (if any) goes to a scratch folder.
scratch = fullfile(work_dir, 'scratch_struct');
mkdir(scratch);
param_run.ephysKilosortPath = scratch;
[ut_s, uts_s] = bc.qm.getQualityUnitType(param_run, S, scratch);

fid = fopen(fullfile(work_dir, 'labels.tsv'), 'w');
fprintf(fid, 'unitType_table\tunitType_string_table\tunitType_struct\tunitType_string_struct\n');
for i = 1:numel(ut_t)
  fprintf(fid, '%s\t%s\t%s\t%s\n', num(ut_t(i)), uts_t{i}, num(ut_s(i)), uts_s{i});
end
fclose(fid);
fprintf('run_classifier: classified %d units\n', numel(ut_t));
end

function s = num(x)
s = sprintf('%.17g', x);
end

function spec = read_spec(path)
lines = strsplit(fileread(path), "\n");
spec.ops = {};
for i = 1:numel(lines)
  line = lines{i};
  if isempty(line)
    continue
  end
  f = strsplit(line, "\t");
  switch f{1}
    case 'qpv'  % qpv <name> <kind> <value>: argument of qualityParamValues
      spec.qpv.(f{2}) = parse_value(f{3}, f{4});
    otherwise   % set <name> <kind> <value> | rename <old> <new> | remove <name>
      spec.ops{end + 1} = f;
  end
end
end

function v = parse_value(kind, text)
switch kind
  case 'num'
    v = str2double(text);
  case 'str'
    v = text;
  case 'empty'
    v = [];
  otherwise
    error('unknown kind %s', kind);
end
end

function param = apply_ops(param, ops)
for i = 1:numel(ops)
  f = ops{i};
  switch f{1}
    case 'set'
      param.(f{2}) = parse_value(f{3}, f{4});
    case 'remove'
      param = rmfield(param, f{2});
    case 'rename'  % keep the field's position, as a param saved by an older version would have it
      names = fieldnames(param);
      vals = struct2cell(param);
      names{strcmp(names, f{2})} = f{3};
      param = cell2struct(vals, names, 1);
    otherwise
      error('unknown op %s', f{1});
  end
end
end

function dump_param(param, path)
% One line per field: name, class, rows, cols, values ('%.17g', comma separated) or text.
fid = fopen(path, 'w');
names = fieldnames(param);
for i = 1:numel(names)
  v = param.(names{i});
  if ischar(v)
    txt = v;
  else
    txt = strjoin(arrayfun(@(x) sprintf('%.17g', x), double(v(:)'), 'UniformOutput', false), ',');
  end
  fprintf(fid, '%s\t%s\t%d\t%d\t%s\n', names{i}, class(v), rows(v), columns(v), txt);
end
fclose(fid);
end

function write_struct_csv(S, path)
names = fieldnames(S);
M = cell2mat(cellfun(@(n) double(S.(n)(:)), names', 'UniformOutput', false));
fid = fopen(path, 'w');
fprintf(fid, '%s\n', strjoin(names', ','));
fclose(fid);
dlmwrite(path, M, '-append', 'delimiter', ',', 'precision', '%.17g');
end

function S = read_qmetric(path)
fid = fopen(path, 'r');
header = fgetl(fid);
fclose(fid);
names = strsplit(strtrim(header), ',');
M = dlmread(path, ',', 1, 0);
if columns(M) ~= numel(names)
  error('qmetric.csv: %d names but %d columns', numel(names), columns(M));
end
S = struct();
for j = 1:numel(names)
  S.(names{j}) = M(:, j);
end
end
