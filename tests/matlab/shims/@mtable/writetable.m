function writetable(t, filename, varargin)
% Minimal stand-in for MATLAB's writetable for a table of numeric and cellstr
% columns: header line of variable names, then one line per row. Numbers are
% written with '%.15g' (NaN as NaN), text as is. 'Delimiter' may be '\t', 'tab',
% ',' or 'comma'; default ','.
delim = ',';
for i = 1:2:numel(varargin)
  if strcmpi(varargin{i}, 'Delimiter')
    d = varargin{i + 1};
    if any(strcmpi(d, {'\t', 'tab'}))
      delim = sprintf('\t');
    elseif any(strcmpi(d, {',', 'comma'}))
      delim = ',';
    else
      delim = d;
    end
  end
end
fid = fopen(filename, 'w');
if fid < 0
  error('writetable shim: cannot open %s', filename);
end
fprintf(fid, '%s\n', strjoin(t.names, delim));
n = numel(t.cols{1});
for r = 1:n
  cells = cell(1, numel(t.cols));
  for c = 1:numel(t.cols)
    v = t.cols{c}(r);
    if iscell(v)
      cells{c} = v{1};
    else
      cells{c} = sprintf('%.15g', v);
    end
  end
  fprintf(fid, '%s\n', strjoin(cells, delim));
end
fclose(fid);
end
