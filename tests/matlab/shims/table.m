function t = table(varargin)
% Minimal stand-in for MATLAB's table(col1, col2, ..., 'VariableNames', names),
% the only form Bombcell's getQualityUnitType uses (to write cluster_bc_unitType.tsv).
k = find(cellfun(@(a) ischar(a) && strcmp(a, 'VariableNames'), varargin), 1);
if isempty(k)
  error('table shim: VariableNames is required');
end
cols = varargin(1:k - 1);
names = varargin{k + 1};
s = struct();
for i = 1:numel(cols)
  s.(names{i}) = cols{i};
end
t = mtable(s);
end
