function t = mtable(s)
% Minimal stand-in for a MATLAB table of column vectors, built from a
% struct of equal-length columns. It supports what Bombcell's classifier
% does with a table: t.Var, t.Var = x, t.Properties.VariableNames and
% renaming through t.Properties.VariableNames(mask) = names. Like a MATLAB
% table (and unlike a struct), isfield(t, name) is false and istable(t) true.
if nargin == 0
  s = struct();
end
data.names = fieldnames(s)';
data.cols = cellfun(@(n) s.(n)(:), data.names, 'UniformOutput', false);
t = class(data, 'mtable');
end
