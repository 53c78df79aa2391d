function out = subsref(t, idx)
if ~strcmp(idx(1).type, '.')
  error('mtable: only dot indexing is supported');
end
name = idx(1).subs;
if strcmp(name, 'Properties')
  val = struct('VariableNames', {t.names});
else
  k = find(strcmp(t.names, name));
  if isempty(k)
    error('mtable: Unrecognized table variable name ''%s''.', name);
  end
  val = t.cols{k};
end
if numel(idx) > 1
  out = subsref(val, idx(2:end));
else
  out = val;
end
end
