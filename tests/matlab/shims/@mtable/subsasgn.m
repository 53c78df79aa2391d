function t = subsasgn(t, idx, val)
if ~strcmp(idx(1).type, '.')
  error('mtable: only dot assignment is supported');
end
name = idx(1).subs;
if strcmp(name, 'Properties')
  if numel(idx) < 2 || ~strcmp(idx(2).subs, 'VariableNames')
    error('mtable: only Properties.VariableNames can be assigned');
  end
  names = t.names;
  if numel(idx) > 2
    names = subsasgn(names, idx(3:end), val);
  else
    names = val;
  end
  if numel(unique(names)) ~= numel(names)
    error('mtable: duplicate variable names');
  end
  t.names = names;
  return
end
k = find(strcmp(t.names, name));
if numel(idx) > 1
  if isempty(k)
    error('mtable: Unrecognized table variable name ''%s''.', name);
  end
  t.cols{k} = subsasgn(t.cols{k}, idx(2:end), val);
else
  if isempty(k)
    t.names{end + 1} = name;
    t.cols{end + 1} = val(:);
  else
    t.cols{k} = val(:);
  end
end
end
